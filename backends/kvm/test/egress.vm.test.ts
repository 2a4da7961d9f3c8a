// An egress on real QEMU: a busybox guest with no network device sends a line
// through its `out` egress, the broker opens the TCP connection to a server
// this test runs on loopback, and the line arrives there.

import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, destroy, status } from '../src/lifecycle/commands';
import { runDirFor } from '../src/lifecycle/daemon';
import { planOf, repoRoot } from './fixtures/plans';
import { lifecycleOptions, qemuPidsUnder } from './fixtures/vm';

let ws: string;
let runDir: string;
let server: Server;
let received = '';
const bundle = join(repoRoot, 'cli/dist/mclc.mjs');
const opts = () => lifecycleOptions(ws, existsSync(bundle) ? { supervisorCommand: [process.execPath, bundle] } : {});

beforeAll(async () => {
  server = createServer((s) => {
    s.on('data', (d: Buffer) => (received += d.toString('utf8')));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  ws = mkdtempSync(join(tmpdir(), 'mcl-egress-'));
  cpSync(join(__dirname, 'fixtures/egress'), ws, { recursive: true });
  const src = join(ws, 'egress.mcl');
  writeFileSync(src, readFileSync(src, 'utf8').replace('tcp://127.0.0.1:9', `tcp://127.0.0.1:${port}`));
  runDir = runDirFor(join(ws, '.mcl', 'state.json'));
  await apply(planOf(ws, 'egress.mcl'), opts(), () => undefined);
}, 300_000);

afterAll(async () => {
  await destroy(opts(), () => undefined).catch(() => undefined);
  expect(qemuPidsUnder(runDir)).toEqual([]);
  rmSync(ws, { recursive: true, force: true });
  await new Promise<void>((r) => server.close(() => r()));
}, 120_000);

describe('an egress on QEMU', () => {
  it('carries the guest\'s bytes to the destination, and status counts the connections', async () => {
    const end = Date.now() + 90_000;
    while (!received.includes('hello from the guest\n') && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
    expect(received).toContain('hello from the guest\n');
    const s = await status(opts());
    const e = s.egresses?.find((x) => x.name === 'out');
    expect(e?.destination).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    expect(e?.connections_total).toBeGreaterThan(0);
    expect(e?.violations).toBe(0);
  }, 120_000);
});
