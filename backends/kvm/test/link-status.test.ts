import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LinkStatus } from '@mcl/plan/backend';
import { Supervisor } from '../src/lifecycle/supervisor';
import { startLinks } from '../src/lifecycle/links';
import { MetricsEndpoint } from '../src/lifecycle/metrics';
import { Broker, Links } from '@mcl/broker';
import { testPlan } from '../../broker/test/helpers';
import { identities, twoHostPlan } from '../../broker/test/link-helpers';
import { FakeBroker, FakeRuntime, inst, plan } from './fixtures/fakes';

describe('supervisor: links between hosts', () => {
  let dir: string;
  let sup: Supervisor;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mcl-sup-link-'));
    FakeBroker.all = [];
    sup = new Supervisor({ runtime: new FakeRuntime(), brokerFactory: (p, h) => new FakeBroker(p, h), runDir: dir, backoffMs: 5, maxBackoffMs: 20 });
  });
  afterEach(async () => {
    await sup.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports the links of its broker, and none before a broker or from a broker without links', async () => {
    expect(sup.linkStatus()).toEqual([]);
    await sup.apply(plan([inst('db')], [], 'p1'), { replace: [], readyTimeoutMs: 1000 }, () => {});
    expect(sup.linkStatus()).toEqual([]);
    const link: LinkStatus = { peer: 'b', address: '10.0.0.2:7400', state: 'up', since: 1, bytes_out: 1, bytes_in: 2, frames_out: 1, frames_in: 1, latency_ms: 0.5, latency_p50_ms: 0.5, latency_p99_ms: 0.5, connects: 1, refused: {}, channels: ['x->y'] };
    (FakeBroker.all[0] as FakeBroker & { linkStatus(): LinkStatus[] }).linkStatus = () => [link];
    expect(sup.linkStatus()).toEqual([link]);
    // The metrics endpoint exposes the same figures.
    const text = await new MetricsEndpoint(() => sup, () => null).registry.metrics();
    expect(text).toContain('mcl_link_up{peer="b"} 1');
    expect(text).toContain('mcl_link_bytes{peer="b",direction="out"} 1');
    expect(text).toContain('mcl_link_bytes{peer="b",direction="in"} 2');
    expect(text).toContain('mcl_link_latency_seconds{peer="b"} 0.0005');
  });
});

describe('the supervisor\'s links (link.json in the run directory)', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mcl-links-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('starts none for a plan on one host, says why for a missing file, and starts the configured ones, which close with the broker', async () => {
    const logs: string[] = [];
    const one = new Broker(testPlan());
    expect(await startLinks(one, testPlan(), dir, (s) => logs.push(s))).toBeNull();
    await one.close();

    const plan = twoHostPlan();
    const b = new Broker(plan);
    const missing = await startLinks(b, plan, dir, (s) => logs.push(s));
    expect(missing).toMatch(/^the plan has channels between hosts, but no link can carry them: .*link\.json is missing/);
    expect(logs.at(-1)).toContain('broker error:');

    const free = createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
    const port = (free.address() as { port: number }).port;
    await new Promise((r) => free.close(r));
    const id = identities();
    writeFileSync(join(dir, 'link.json'), JSON.stringify({ self: id.b, peers: [{ name: 'a', cert: id.a.cert, host: '', port: 0 }], listen: { host: '127.0.0.1', port } }), { mode: 0o600 });
    const linksB = await startLinks(b, plan, dir, (s) => logs.push(s));
    expect(linksB).toBeInstanceOf(Links);
    const a = new Broker(plan);
    const linksA = new Links(a, { self: id.a, peers: [{ name: 'b', cert: id.b.cert, host: '127.0.0.1', port }], reconnectMinMs: 20 });
    await linksA.start();
    await linksA.whenUp('b');
    await (linksB as Links).whenUp('a');
    expect(b.linkStatus().map((l) => [l.peer, l.state])).toEqual([['a', 'up']]);
    // Closing the broker closes its links: the other host sees the link go down.
    const down = new Promise<void>((r) => linksA.once('down', () => r()));
    await b.close();
    await down;
    await a.close();
  });
});
