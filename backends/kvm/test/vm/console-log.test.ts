import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConsoleLog, rotateLogFiles } from '../../src/vm/console-log';

let dir: string;
let server: Server;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mcl-console-'));
});
afterEach(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A connected pair of unix sockets: `guest` plays QEMU's end of the console, `host` is read by ConsoleLog. */
async function pair(): Promise<{ guest: Socket; host: Socket }> {
  const path = join(dir, 'con.sock');
  const accepted = new Promise<Socket>((r) => {
    server = createServer((s) => r(s));
  });
  await new Promise<void>((r) => server.listen(path, r));
  const host = createConnection(path);
  await new Promise((r) => host.once('connect', r));
  return { guest: await accepted, host };
}

const write = (s: Socket, data: Buffer) => new Promise<void>((r) => (s.write(data) ? r() : s.once('drain', () => r())));

describe('console log', () => {
  it('caps each file and keeps a fixed number of rotated files, by renames only', async () => {
    const { guest, host } = await pair();
    const path = join(dir, 'console.log');
    writeFileSync(path, 'qemu: a message of its own\n');
    const log = new ConsoleLog(path, host, { maxBytes: 64 * 1024, files: 2, bytesPerSecond: 1 << 30 }, '--- header ---');
    const line = Buffer.from('x'.repeat(1023) + '\n');
    for (let i = 0; i < 1024; i++) await write(guest, line);
    guest.end();
    await new Promise((r) => host.once('close', r));
    log.close();
    const files = readdirSync(dir).filter((f) => f.startsWith('console.log')).sort();
    expect(files).toEqual(['console.log', 'console.log.1', 'console.log.2']);
    // A file ends at most one read (64 KiB) past the limit; 1 MiB went through, 3 files x at most 128 KiB are kept.
    for (const f of files) expect(statSync(join(dir, f)).size).toBeLessThanOrEqual(128 * 1024);
    expect(statSync(join(dir, 'console.log.1')).size).toBeGreaterThan(0);
    expect(log.lostBytes).toBe(0);
  });

  it('makes a guest that writes faster than its rate wait', async () => {
    const { guest, host } = await pair();
    const path = join(dir, 'console.log');
    const log = new ConsoleLog(path, host, { maxBytes: 64 << 20, files: 1, bytesPerSecond: 1 << 20 });
    const t0 = Date.now();
    // 4 MiB at 1 MiB/s: after a burst of 1 MiB (and what the socket buffers), the writer waits about 3 s.
    for (let i = 0; i < 64; i++) await write(guest, Buffer.alloc(64 * 1024, 'y'));
    const done = new Promise((r) => host.once('close', r));
    guest.end();
    await done;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2000);
    expect(statSync(path).size).toBe(4 << 20);
    log.close();
  });

  it('rotates by renames, dropping the oldest', () => {
    const path = join(dir, 'console.log');
    for (const [f, t] of [['console.log', 'now'], ['console.log.1', 'one'], ['console.log.2', 'two']]) writeFileSync(join(dir, f), t);
    rotateLogFiles(path, 2);
    expect(existsSync(path)).toBe(false);
    expect(readFileSync(`${path}.1`, 'utf8')).toBe('now');
    expect(readFileSync(`${path}.2`, 'utf8')).toBe('one');
    expect(existsSync(`${path}.3`)).toBe(false);
  });
});
