// Per-session clones on real QEMU: the honeypot's trap is forked for every
// TCP connection to its exposed port (from a warm pool of paused clones) and
// destroyed when the connection closes, so what one visitor does is gone for
// the next.

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply, destroy, logs, status } from '../src/lifecycle/commands';
import { runDirFor } from '../src/lifecycle/daemon';
import { planOf, repoRoot, withHostPorts, withWholePathPattern } from './fixtures/plans';
import { lifecycleOptions, qemuPidsUnder, until } from './fixtures/vm';

const PORT = 19080 + (process.pid % 1000);
let ws: string;
let runDir: string;
const opts = () => lifecycleOptions(ws);

/** One request on a connection of its own (no keep-alive), so each is one session. */
function once(method: string, path: string): Promise<{ status: number; body: string; server?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: PORT, method, path, agent: false, headers: { connection: 'close', 'user-agent': 'scanner/1.0' } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, server: res.headers.server as string | undefined }));
    });
    req.setTimeout(60_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  ws = mkdtempSync(join(tmpdir(), 'mcl-pot-'));
  cpSync(join(repoRoot, 'examples/honeypot'), ws, { recursive: true });
  // A smaller session limit keeps the plan within the default target's vCPU budget.
  const src = join(ws, 'honeypot.mcl');
  writeFileSync(src, readFileSync(src, 'utf8').replace('per session pool 2 max 16', 'per session pool 2 max 4'));
  runDir = runDirFor(join(ws, '.mcl', 'state.json'));
  const plan = withHostPorts(withWholePathPattern(planOf(ws, 'honeypot.mcl')), () => PORT);
  await apply(plan, opts(), () => undefined);
}, 300_000);

afterAll(async () => {
  await destroy(opts(), () => undefined).catch(() => undefined);
  expect(qemuPidsUnder(runDir)).toEqual([]);
  rmSync(ws, { recursive: true, force: true });
}, 120_000);

describe('per-session clones', () => {
  it('keeps a warm pool of paused clones', async () => {
    const s = await status(opts());
    const trap = s.instances.find((i) => i.id === 'trap')!;
    expect(trap.mode).toBe('per_session');
    expect(trap.clones.map((c) => c.state)).toEqual(['paused', 'paused']);
  });

  it('forks a clone per connection and disposes of it when the connection closes', async () => {
    const first = await once('POST', '/upload');
    expect(first).toMatchObject({ status: 200, server: 'Apache/2.4.41 (Ubuntu)' });
    expect(first.body).toMatch(/upload stored/);
    // The next visitor gets a fresh clone: the file written by the first is not there.
    const second = await once('GET', '/pwned');
    expect(second.body).toMatch(/no: a fresh clone/);
    // Sessions are over: their clones are gone and the pool is full again.
    const s = await until('session clones disposed', async () => {
      const st = await status(opts());
      const trap = st.instances.find((i) => i.id === 'trap')!;
      return trap.clones.length === 2 && trap.clones.every((c) => c.state === 'paused') ? st : undefined;
    });
    const indices = s.instances.find((i) => i.id === 'trap')!.clones.map((c) => c.index);
    // Clones 0 and 1 served the two sessions; the pool now holds newer ones.
    expect(indices.every((i) => i >= 2)).toBe(true);
    const lines: string[] = [];
    await logs('recorder', { ...opts(), follow: false }, (l) => lines.push(l.text));
    expect(lines.join('\n')).toMatch(/POST \/upload from scanner\/1.0/);
    expect(lines.join('\n')).toMatch(/GET \/pwned from scanner\/1.0/);
  }, 180_000);
});
