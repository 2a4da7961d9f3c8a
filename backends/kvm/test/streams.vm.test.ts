// A raw TCP exposure on real QEMU: bytes a client writes to the host port
// reach a busybox guest as std.tcp.Stream chunks and come back from it, and
// the exposure's max_connections is enforced by the broker in front of it.

import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, destroy } from '../src/lifecycle/commands';
import { runDirFor } from '../src/lifecycle/daemon';
import { planOf, repoRoot, withHostPorts } from './fixtures/plans';
import { lifecycleOptions, qemuPidsUnder } from './fixtures/vm';

const PORT = 19300 + (process.pid % 500);
let ws: string;
let runDir: string;
const bundle = join(repoRoot, 'cli/dist/mclc.mjs');
const opts = () => lifecycleOptions(ws, existsSync(bundle) ? { supervisorCommand: [process.execPath, bundle] } : {});

beforeAll(async () => {
  ws = mkdtempSync(join(tmpdir(), 'mcl-stream-'));
  cpSync(join(__dirname, 'fixtures/stream'), ws, { recursive: true });
  runDir = runDirFor(join(ws, '.mcl', 'state.json'));
  await apply(withHostPorts(planOf(ws, 'stream.mcl'), () => PORT), opts(), () => undefined);
}, 300_000);

afterAll(async () => {
  await destroy(opts(), () => undefined).catch(() => undefined);
  expect(qemuPidsUnder(runDir)).toEqual([]);
  rmSync(ws, { recursive: true, force: true });
}, 120_000);

/** A client of the exposure, with what it received and whether it was closed. */
function client(): { sock: Socket; got: () => string; closed: Promise<void> } {
  const sock = connect(PORT, '127.0.0.1');
  let buf = '';
  sock.on('data', (d: Buffer) => (buf += d.toString('latin1')));
  sock.on('error', () => {});
  return { sock, got: () => buf, closed: new Promise((r) => sock.once('close', () => r())) };
}

async function until<T>(what: string, f: () => T | undefined, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('a raw TCP exposure on QEMU', () => {
  it('echoes the bytes of each connection back to it, and refuses a third connection', async () => {
    const a = client();
    const b = client();
    // The guest's serve loop may still be starting: write until the first echo comes back.
    await until('the first echo', () => {
      if (a.got().includes('hello a\n')) return true;
      if (a.got() === '') a.sock.write('hello a\n');
      return undefined;
    });
    b.sock.write('hello b\n');
    await until('the second echo', () => (b.got().includes('hello b\n') ? true : undefined));
    expect(a.got()).not.toContain('hello b');
    const c = client();
    await c.closed;
    expect(c.got()).toBe('');
    a.sock.destroy();
    b.sock.destroy();
  }, 120_000);
});
