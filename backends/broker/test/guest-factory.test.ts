// The guest helper's factory commands (guest/mcl-msg create, list, destroy and
// MCL_TO) run by busybox sh against the broker, over FIFOs standing in for the
// creator's factory port as in guest.test.ts.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { Duplex } from 'node:stream';
import { Broker } from '../src/index';
import { FakePort, farmPlan, kvHandler, lateBoundPlan, tempDir } from './helpers';

const BUSYBOX = ['/usr/bin/busybox', '/bin/busybox'].find((p) => existsSync(p));
const HELPER = resolve(__dirname, '../guest/mcl-msg');

let dir: string;
let cleanup: () => void;
let broker: Broker;
let bin: string;
const sockets: Socket[] = [];
const fakes: FakePort[] = [];

function fifoPort(devDir: string, port: string): Duplex {
  mkdirSync(devDir, { recursive: true });
  const base = join(devDir, port);
  execFileSync('mkfifo', [`${base}.in`, `${base}.out`]);
  const toGuest = new Socket({ fd: openSync(`${base}.in`, 'r+'), readable: false, writable: true });
  const fromGuest = new Socket({ fd: openSync(`${base}.out`, 'r+'), readable: true, writable: false });
  sockets.push(toGuest, fromGuest);
  return Duplex.from({ readable: fromGuest, writable: toGuest });
}

function run(devDir: string, extra: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const c = spawn(join(bin, 'mcl-msg'), args, { env: { PATH: bin, MCL_DEV_DIR: devDir, MCL_TIMEOUT: '5', TMPDIR: dir, ...extra } });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('close', (code) => done({ code, stdout, stderr }));
  });
}

describe.skipIf(!BUSYBOX)('mcl-msg on a factory port', () => {
  let dev: string;

  beforeAll(async () => {
    ({ dir, cleanup } = tempDir());
    bin = join(dir, 'bin');
    mkdirSync(bin);
    execFileSync(BUSYBOX!, ['--install', '-s', bin]);
    writeFileSync(join(bin, 'mcl-msg'), `#!${BUSYBOX} sh\nexec ${BUSYBOX} sh ${HELPER} "$@"\n`, { mode: 0o755 });
    let next = 0;
    broker = new Broker(farmPlan(), {
      onCreate: async () => {
        const idx = next++;
        const p = await FakePort.listen(join(dir, `w.${idx}.sock`));
        fakes.push(p);
        p.handler = kvHandler(new Map([['k', 'v']]), `w${idx}`);
        await broker.attachPort('w', idx, 'kv', p.path);
        await p.connected();
        return idx;
      },
      onDestroy: (id, idx) => broker.detachClone(id, idx),
    });
    dev = join(dir, 'coord');
    void broker.attachPort('coord', 0, 'workers', fifoPort(dev, 'workers'));
  });

  afterAll(async () => {
    await broker.close();
    for (const s of sockets) s.destroy();
    for (const f of fakes) await f.close();
    cleanup();
  });

  it('creates, calls by handle, lists, destroys, and reports denials with exit code 2', async () => {
    expect(await run(dev, {}, 'create', 'workers', '{"job":"a"}')).toMatchObject({ code: 0, stdout: '0\n' });
    expect(await run(dev, {}, 'create', 'workers', '{"job":"b"}')).toMatchObject({ code: 0, stdout: '1\n' });
    const over = await run(dev, {}, 'create', 'workers', '{"job":"c"}');
    expect(over.code).toBe(2);
    expect(over.stderr).toMatch(/denied: .*its factory's max/);
    const bad = await run(dev, {}, 'create', 'workers', '{"job":"far too long"}');
    expect(bad.code).toBe(2);
    const r = await run(dev, { MCL_TO: '1' }, 'call', 'workers', 'get', '{"key":"k"}');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ hit: { key: 'k', value: 'w1:v' } });
    expect(await run(dev, {}, 'list', 'workers')).toMatchObject({ code: 0, stdout: '0\n1\n' });
    expect(await run(dev, {}, 'destroy', 'workers', '0')).toMatchObject({ code: 0 });
    expect(await run(dev, {}, 'list', 'workers')).toMatchObject({ code: 0, stdout: '1\n' });
    expect((await run(dev, {}, 'destroy', 'workers', '0')).code).toBe(2);
  });

  it('listens on the factory port with MCL_FROM naming the created instance that notified', async () => {
    writeFileSync(join(bin, 'on-note'), `#!${BUSYBOX} sh\necho "from=$MCL_FROM op=$MCL_OP body=$(cat)"\n`, { mode: 0o755 });
    const c = spawn(join(bin, 'mcl-msg'), ['listen', 'workers', 'on-note'], { env: { PATH: bin, MCL_DEV_DIR: dev, TMPDIR: dir } });
    let stdout = '';
    c.stdout.on('data', (d) => (stdout += d));
    try {
      // Handle 1 is alive from the test above; fakes[1] is its port. Sent until the listener has the port open.
      for (let i = 0; i < 50 && !stdout; i++) {
        fakes[1].send({ t: 'notify', op: 'changed', body: { key: 'k' } });
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(stdout.split('\n')[0]).toBe('from=1 op=changed body={"key":"k"}');
      // An instance gone unasked reaches the listener too, as MCL_KIND=gone.
      broker.createdGone('w', 1, 'replaced');
      for (let i = 0; i < 50 && !stdout.includes('replaced'); i++) await new Promise((r) => setTimeout(r, 100));
      expect(stdout.split('\n')).toContain('from=1 op= body="replaced"');
    } finally {
      c.kill();
    }
  });
});

describe.skipIf(!BUSYBOX)('mcl-msg rebind on a late-bound port', () => {
  let dev: string;
  let lb: Broker;

  beforeAll(async () => {
    ({ dir, cleanup } = tempDir());
    bin = join(dir, 'bin');
    mkdirSync(bin);
    execFileSync(BUSYBOX!, ['--install', '-s', bin]);
    writeFileSync(join(bin, 'mcl-msg'), `#!${BUSYBOX} sh\nexec ${BUSYBOX} sh ${HELPER} "$@"\n`, { mode: 0o755 });
    lb = new Broker(lateBoundPlan(), { reconnectDelayMs: 10 });
    for (const id of ['db', 'rep']) {
      const p = await FakePort.listen(join(dir, `${id}.sock`));
      fakes.push(p);
      p.handler = kvHandler(new Map([['k', 'v']]), id);
      await lb.attachPort(id, 0, 'kv', p.path);
    }
    dev = join(dir, 'app');
    void lb.attachPort('app', 0, 'db', fifoPort(dev, 'db'));
  });

  afterAll(async () => {
    await lb.close();
    for (const s of sockets) s.destroy();
    for (const f of fakes) await f.close();
    cleanup();
  });

  it('moves the port to another candidate and reports a name that is not one with exit code 2', async () => {
    const get = async () => JSON.parse((await run(dev, {}, 'call', 'db', 'get', '{"key":"k"}')).stdout);
    expect(await get()).toEqual({ hit: { key: 'k', value: 'db:v' } });
    expect(await run(dev, {}, 'rebind', 'db', 'rep')).toMatchObject({ code: 0, stdout: 'rep.kv\n' });
    expect(await get()).toEqual({ hit: { key: 'k', value: 'rep:v' } });
    const no = await run(dev, {}, 'rebind', 'db', 'ordered');
    expect(no.code).toBe(2);
    expect(no.stderr).toMatch(/denied: .*is not a candidate/);
    expect(await get()).toEqual({ hit: { key: 'k', value: 'rep:v' } });
  });
});
