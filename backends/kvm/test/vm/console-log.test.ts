import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConsoleLog, rotateLogFiles, type ConsoleLogLimits } from '../../src/vm/console-log';

let dir: string;
let server: Server;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mcl-console-'));
});
afterEach(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A console socket as QEMU serves it, and a ConsoleLog reading it into
 * `<dir>/console.log`: `guest` is QEMU's end, where the test writes.
 */
async function serve(limits: ConsoleLogLimits, header?: string): Promise<{ guest: Socket; log: ConsoleLog; closed: Promise<void> }> {
  const sock = join(dir, 'con.sock');
  const accepted = new Promise<Socket>((r) => {
    server = createServer((s) => r(s));
  });
  await new Promise<void>((r) => server.listen(sock, r));
  const log = await ConsoleLog.connect(sock, join(dir, 'console.log'), { limits, header, timeoutMs: 5000 });
  const guest = await accepted;
  const closed = new Promise<void>((r) => guest.once('close', () => r()));
  return { guest, log, closed };
}

const write = (s: Socket, data: Buffer) => new Promise<void>((r) => (s.write(data) ? r() : s.once('drain', () => r())));

describe('console log', () => {
  it('caps each file and keeps a fixed number of rotated files, by renames only', async () => {
    const path = join(dir, 'console.log');
    writeFileSync(path, 'qemu: a message of its own\n');
    const { guest, log } = await serve({ maxBytes: 64 * 1024, files: 2, bytesPerSecond: 1 << 30 }, '--- header ---');
    const line = Buffer.from('x'.repeat(1023) + '\n');
    for (let i = 0; i < 1024; i++) await write(guest, line);
    await until(() => log.bytes === 1024 * 1024);
    guest.end();
    log.close();
    const files = readdirSync(dir).filter((f) => f.startsWith('console.log')).sort();
    expect(files).toEqual(['console.log', 'console.log.1', 'console.log.2']);
    // A file ends at most one read (64 KiB) past the limit; 1 MiB went through, 3 files x at most 128 KiB are kept.
    for (const f of files) expect(statSync(join(dir, f)).size).toBeLessThanOrEqual(128 * 1024);
    expect(statSync(join(dir, 'console.log.1')).size).toBeGreaterThan(0);
    expect(log.lostBytes).toBe(0);
  });

  it('makes a guest that writes faster than its rate wait', async () => {
    const { guest, log } = await serve({ maxBytes: 64 << 20, files: 1, bytesPerSecond: 1 << 20 });
    const t0 = Date.now();
    // 4 MiB at 1 MiB/s: after a burst of 1 MiB (and what the socket buffers), the writer waits about 3 s.
    for (let i = 0; i < 64; i++) await write(guest, Buffer.alloc(64 * 1024, 'y'));
    await until(() => log.bytes === 4 << 20, 10_000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2000);
    expect(statSync(join(dir, 'console.log')).size).toBe(4 << 20);
    guest.end();
    log.close();
  });

  it('gathers a byte-per-write console into few reads', async () => {
    const { guest, log } = await serve({ maxBytes: 1 << 20, files: 1, bytesPerSecond: 1 << 30 });
    // As QEMU's serial port writes: a byte at a time.
    for (let i = 0; i < 300; i++) {
      guest.write('x');
      await new Promise((r) => setTimeout(r, 1));
    }
    await until(() => log.bytes === 300);
    // A reader taking each write as it comes makes about 300 reads; one that waits 5 ms after each, a third of that.
    expect(log.reads).toBeLessThan(150);
    guest.end();
    log.close();
  });

  it('reads what is left in the socket when QEMU exits, however the reader was paced, and then closes', async () => {
    // A slow rate keeps the reader paused most of the time, as a program's last lines usually find it.
    const { guest, log } = await serve({ maxBytes: 64 << 20, files: 1, bytesPerSecond: 16 * 1024 });
    const body = Buffer.alloc(128 * 1024, 'z');
    guest.write(body);
    guest.end('the last line\n');
    // QEMU exited: its end is closed; close() here would drop what the socket still holds.
    log.drainAndClose(5_000);
    await until(() => readFileSync(join(dir, 'console.log'), 'utf8').endsWith('the last line\n'), 5_000);
    expect(log.bytes).toBe(body.length + 'the last line\n'.length);
    expect(log.lostBytes).toBe(0);
  });

  it('closes a drained console whose socket never ends within the bound', async () => {
    const { guest, log } = await serve({ maxBytes: 64 << 20, files: 1, bytesPerSecond: 1 << 20 });
    const closed = new Promise<void>((r) => guest.once('close', () => r()));
    log.drainAndClose(200);
    await closed;
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

async function until(cond: () => boolean, ms = 5000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
