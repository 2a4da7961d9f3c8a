// mcl-kv, the reference std.kv server in every image, run by busybox sh on the
// host. A FIFO pair stands in for the virtio-serial device, as for mcl-msg.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, mkdirSync, type WriteStream } from 'node:fs';
import { createInterface, type Interface } from 'node:readline';
import { join, resolve } from 'node:path';
import { tempDir } from './helpers';

const BUSYBOX = ['/usr/bin/busybox', '/bin/busybox'].find((p) => existsSync(p));
const KV = resolve(__dirname, '../guest/mcl-kv');

let dir: string;
let cleanup: () => void;
let child: ChildProcess | undefined;
let toGuest: WriteStream;
let lines: Interface;
let pending: string[] = [];
let waiters: ((l: string) => void)[] = [];

function start(...args: string[]): void {
  const dev = join(dir, 'dev');
  mkdirSync(dev, { recursive: true });
  execFileSync('mkfifo', [join(dev, 'kv.in'), join(dev, 'kv.out')]);
  child = spawn(BUSYBOX!, ['sh', KV, ...args, 'kv'], {
    env: { PATH: '/usr/bin:/bin', MCL_DEV_DIR: dev, MCL_KV_DIR: join(dir, 'store') },
    stdio: 'ignore',
  });
  // Opening the FIFOs blocks until the other side opens them too, so open ours after the guest starts.
  toGuest = createWriteStream(join(dev, 'kv.in'));
  lines = createInterface({ input: createReadStream(join(dev, 'kv.out')) });
  lines.on('line', (l) => (waiters.length ? waiters.shift()!(l) : pending.push(l)));
}

function call(id: number, op: string, body: unknown): Promise<unknown> {
  toGuest.write(JSON.stringify({ t: 'call', op, id, body }) + '\n');
  return new Promise<string>((res) => (pending.length ? res(pending.shift()!) : waiters.push(res))).then((l) => JSON.parse(l));
}

beforeEach(() => {
  ({ dir, cleanup } = tempDir());
  pending = [];
  waiters = [];
});

afterEach(() => {
  child?.kill('SIGKILL');
  toGuest?.destroy();
  lines?.close();
  cleanup();
});

describe.skipIf(!BUSYBOX)('mcl-kv under busybox sh', () => {
  it('serves get, put and delete, with misses and keys that contain slashes', async () => {
    start();
    expect(await call(1, 'get', { key: 'a/b' })).toEqual({ t: 'reply', id: 1, body: 'miss' });
    expect(await call(2, 'put', { key: 'a/b', value: 'x "quoted" y' })).toEqual({ t: 'reply', id: 2, body: { ok: true } });
    expect(await call(3, 'get', { key: 'a/b' })).toEqual({ t: 'reply', id: 3, body: { hit: { key: 'a/b', value: 'x "quoted" y' } } });
    expect(await call(4, 'delete', { key: 'a/b' })).toEqual({ t: 'reply', id: 4, body: { ok: true } });
    expect(await call(5, 'get', { key: 'a/b' })).toEqual({ t: 'reply', id: 5, body: 'miss' });
  });

  it('refuses a new key past --max-keys but still updates existing keys', async () => {
    start('--max-keys', '2');
    await call(1, 'put', { key: 'k1', value: '1' });
    await call(2, 'put', { key: 'k2', value: '2' });
    expect(await call(3, 'put', { key: 'k3', value: '3' })).toEqual({ t: 'error', id: 3, error: 'the store is full (2 keys)' });
    expect(await call(4, 'put', { key: 'k1', value: 'one' })).toEqual({ t: 'reply', id: 4, body: { ok: true } });
    expect(await call(5, 'get', { key: 'k1' })).toEqual({ t: 'reply', id: 5, body: { hit: { key: 'k1', value: 'one' } } });
  });
});
