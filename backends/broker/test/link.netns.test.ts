// The link between two hosts simulated as network namespaces (the harness of
// cli/test/hosts/netns.ts): each host's broker runs in its own namespace, with
// its own address on a bridge the test makes, and a call goes from a requester
// on host a to its provider on host b over the link. The link is cut by taking
// host b off the bridge: host a notices (no pong), reports the link down,
// fails the calls meanwhile, and the link comes back when b is put back. No
// traffic leaves the namespaces the test created.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHosts, hostsUnavailable, type SimHosts } from '../../../cli/test/hosts/netns';
import { identities } from './link-helpers';
import type { LinkStatus } from '../src/link';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const unavailable = hostsUnavailable();
if (unavailable) console.warn(`link.netns.test.ts skipped: ${unavailable}`);

/** A host process: its broker and link in its namespace, driven by JSON lines. */
class HostProc {
  private buf = '';
  private waiters: ((o: Record<string, unknown>) => void)[] = [];
  private queue: Record<string, unknown>[] = [];
  stderr = '';
  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        let o: Record<string, unknown>;
        try {
          o = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        const w = this.waiters.shift();
        if (w) w(o);
        else this.queue.push(o);
      }
    });
    child.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
  }

  next(ms = 20_000): Promise<Record<string, unknown>> {
    const q = this.queue.shift();
    if (q) return Promise.resolve(q);
    return new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error(`no answer from the host process: ${this.stderr}`)), ms);
      this.waiters.push((o) => {
        clearTimeout(t);
        if (o.fatal) rej(new Error(String(o.fatal)));
        else res(o);
      });
    });
  }

  async ask(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.child.stdin!.write(JSON.stringify(cmd) + '\n');
    return this.next();
  }

  async link(): Promise<LinkStatus> {
    return ((await this.ask({ cmd: 'status' })).links as LinkStatus[])[0];
  }
}

async function until(cond: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(unavailable !== null)('the link between hosts in two network namespaces', () => {
  let sim: SimHosts;
  let dir: string;
  let bundle: string;
  const procs: HostProc[] = [];

  beforeAll(async () => {
    sim = await createHosts(['a', 'b']);
    dir = mkdtempSync(join(tmpdir(), 'mcl-link-ns-'));
    // The host program is bundled once (as scripts/run-ts.mjs would) and run in each namespace.
    bundle = join(dir, 'link-host.mjs');
    const { build } = await import('esbuild');
    const { nodeBundleOptions, esmShim } = (await import(join(REPO, 'scripts', 'esbuild-options.mjs'))) as {
      nodeBundleOptions: Record<string, unknown>;
      esmShim: string;
    };
    await build({ ...nodeBundleOptions, entryPoints: [join(REPO, 'backends/broker/test/link-host.ts')], outfile: bundle, banner: { js: esmShim } });
  }, 120_000);

  afterAll(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    sim?.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function start(host: SimHosts['hosts'][number], config: Record<string, unknown>): HostProc {
    const cfgFile = join(dir, `${host.name}.json`);
    // The configuration holds the host's private key: it goes in a file of the test's, not on a command line.
    writeFileSync(cfgFile, JSON.stringify(config), { mode: 0o600 });
    const child = spawn('ip', ['netns', 'exec', host.netns, process.execPath, bundle, cfgFile], { stdio: ['pipe', 'pipe', 'pipe'] });
    const p = new HostProc(child);
    procs.push(p);
    return p;
  }

  it('carries calls between the namespaces, reports a cut link down, and recovers', async () => {
    const id = identities();
    const [ha, hb] = sim.hosts;
    const b = start(hb, { self: id.b, peers: [{ name: 'a', cert: id.a.cert, host: '', port: 0 }], listen: { host: hb.address, port: 7400 }, dir, pingIntervalMs: 200 });
    expect(await b.next()).toMatchObject({ ready: true, port: 7400 });
    const a = start(ha, { self: id.a, peers: [{ name: 'b', cert: id.b.cert, host: hb.address, port: 7400 }], dir, pingIntervalMs: 200 });
    expect(await a.next()).toMatchObject({ ready: true });
    await until(async () => (await a.link()).state === 'up');

    const r = await a.ask({ cmd: 'calls', n: 20 });
    expect(r).toMatchObject({ ok: 20, errors: [] });
    await until(async () => (await a.link()).latency_ms !== null);
    const up = await a.link();
    expect(up).toMatchObject({ peer: 'b', state: 'up', address: `${hb.address}:7400`, connects: 1 });
    expect(up.bytes_out).toBeGreaterThan(0);
    // The provider's host saw the calls arrive over the link from a's address, not from its own.
    expect(spawnSync('ip', ['netns', 'exec', hb.netns, 'ss', '-tnH', 'state', 'established', `sport = :7400`], { encoding: 'utf8' }).stdout).toContain(ha.address);

    // Host b leaves the bridge: a hears no pong, reports the link down, and fails calls at once.
    sim.link(hb, false);
    await until(async () => (await a.link()).state === 'down');
    const during = await a.ask({ cmd: 'calls', n: 1 });
    expect(during.ok).toBe(0);
    expect(String((during.errors as string[])[0])).toContain('link to b');

    sim.link(hb, true);
    await until(async () => (await a.link()).state === 'up', 20_000);
    expect((await a.link()).connects).toBe(2);
    expect(await a.ask({ cmd: 'calls', n: 5 })).toMatchObject({ ok: 5, errors: [] });
    // No frame was refused on either side during all this.
    expect((await a.link()).refused).toEqual({});
    b.child.stdin!.write('{"cmd":"exit"}\n');
    a.child.stdin!.write('{"cmd":"exit"}\n');
  }, 90_000);
});
