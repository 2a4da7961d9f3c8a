// The supervisor's metrics endpoint: what it exposes (in process, with fake
// guests and broker), the loopback-only address rule, and a scrape by a real
// Prometheus of a deployment's supervisor, checked through Prometheus's HTTP API.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChannelCounters } from '@mcl/broker';
import { MetricsEndpoint, parseMetricsAddress } from '../src/lifecycle/metrics';
import { Supervisor } from '../src/lifecycle/supervisor';
import { apply, destroy, status } from '../src/lifecycle/commands';
import type { ApplyOptions } from '../src/lifecycle/events';
import { chan, FakeBroker, FakeRuntime, inst, plan } from './fixtures/fakes';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('metrics address', () => {
  it('takes loopback HOST:PORT, [::1]:PORT or a bare port, and refuses anything else', () => {
    expect(parseMetricsAddress('127.0.0.1:9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseMetricsAddress('[::1]:9000')).toEqual({ host: '::1', port: 9000 });
    expect(parseMetricsAddress('localhost:1')).toEqual({ host: '127.0.0.1', port: 1 });
    expect(parseMetricsAddress('9999')).toEqual({ host: '127.0.0.1', port: 9999 });
    expect(parseMetricsAddress('0.0.0.0:9464')).toMatchObject({ error: expect.stringMatching(/not a loopback address/) });
    expect(parseMetricsAddress('10.0.0.1:9464')).toMatchObject({ error: expect.stringMatching(/not a loopback/) });
    expect(parseMetricsAddress('127.0.0.1:70000')).toMatchObject({ error: expect.stringMatching(/out of range/) });
    expect(parseMetricsAddress('nonsense')).toMatchObject({ error: expect.stringMatching(/not HOST:PORT/) });
  });
});

describe('metrics endpoint', () => {
  let dir: string;
  let sup: Supervisor;
  let m: MetricsEndpoint;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mcl-metrics-'));
    FakeBroker.all = [];
    sup = new Supervisor({ runtime: new FakeRuntime(), brokerFactory: (p, h) => new FakeBroker(p, h), runDir: dir, onRecord: (r) => m.onRecord(r) });
    m = new MetricsEndpoint(() => sup, () => null);
  });
  afterEach(async () => {
    await m.close();
    await sup.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('exposes clone state, restarts, channel frames, bytes and denials by kind, exposures and fork latency over HTTP', async () => {
    const c = chan('web', 'db', 'db', 'kv');
    await sup.apply(plan([inst('web', { label: 'orgA' }), inst('db')], [c]), { replace: [], readyTimeoutMs: 1000 }, () => undefined);
    const counters: ChannelCounters = {
      channel: c.id,
      frames_to_provider: 7,
      frames_to_requirer: 5,
      bytes_to_provider: 700,
      bytes_to_requirer: 500,
      calls: 7,
      replies: 5,
      errors: 0,
      timeouts: 0,
      late_replies: 0,
      violations: { schema: 2 },
      violations_total: 2,
      latency_ms: { p50: 1, p99: 2, max: 3, samples: 5 },
    };
    FakeBroker.all[0].fakeCounters = [counters];
    FakeBroker.all[0].hooks.onViolation({ time: 0, instance: 'web', clone: 0, port: 'db', channel: c.id, kind: 'schema', detail: 'x' });
    FakeBroker.all[0].hooks.onViolation({ time: 0, instance: 'web', clone: 0, port: 'db', channel: c.id, kind: 'schema', detail: 'y' });
    const url = await m.listen({ host: '127.0.0.1', port: 0 });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const res = await fetch(url!);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    expect(text).toContain('mcl_clone_state{system="S",instance_id="web",clone="0",label="orgA",state="running"} 1');
    expect(text).toContain('mcl_clone_restarts{system="S",instance_id="db",clone="0",label=""} 0');
    expect(text).toContain(`mcl_channel_frames{channel="${c.id}",protocol="P",direction="forward"} 7`);
    expect(text).toContain(`mcl_channel_bytes{channel="${c.id}",protocol="P",direction="backward"} 500`);
    expect(text).toContain(`mcl_channel_violations{channel="${c.id}",protocol="P"} 2`);
    expect(text).toContain(`mcl_channel_denials_total{channel="${c.id}",kind="schema"} 2`);
    expect(text).toMatch(/mcl_fork_duration_seconds_count\{instance_id="web"\} 1/);
    expect(text).toContain('# TYPE mcl_fork_duration_seconds histogram');
    // Only GET /metrics.
    expect((await fetch(url!.replace('/metrics', '/other'))).status).toBe(404);
    // Turned off, nothing listens any more.
    await m.listen(null);
    await expect(fetch(url!)).rejects.toThrow();
  });
});

/** A TCP port free on loopback right now. */
function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
  });
}

const PROMETHEUS = '/usr/bin/prometheus';
// Outside CI the scrape is skipped, with this note, where Prometheus is not installed; in CI (scripts/setup.sh
// installs it) it must run, and fails without it.
const promFound = existsSync(PROMETHEUS);

describe.skipIf(!promFound && !process.env.CI)(`a real Prometheus scrapes the supervisor (needs ${PROMETHEUS}: Debian's prometheus package, installed by scripts/setup.sh)`, () => {
  let ws: string;
  let prom: ChildProcess | null = null;
  const supervisorCommand = [process.execPath, '--import', 'tsx', join(__dirname, 'fixtures/supervisor-entry.ts')];
  const opts = (over: Partial<ApplyOptions> = {}): ApplyOptions => ({
    workspace: ws,
    stateFile: join(ws, '.mcl', 'state.json'),
    lockTimeoutMs: 0,
    supervisorCommand,
    signal: new AbortController().signal,
    automation: true,
    replace: [],
    readyTimeoutMs: 10_000,
    ...over,
  });
  beforeEach(() => {
    ws = mkdtempSync(join(tmpdir(), 'mcl-prom-'));
    process.env.MCL_TEST_FAKE_TAG = basename(ws);
    process.env.MCL_LEDGER_INTERVAL_MS = '200';
  });
  afterEach(async () => {
    if (prom && prom.exitCode === null) {
      prom.kill('SIGTERM');
      await new Promise((r) => prom!.once('exit', r));
    }
    await destroy(opts(), () => undefined).catch(() => undefined);
    delete process.env.MCL_LEDGER_INTERVAL_MS;
    if (process.env.MCL_TEST_KEEP) console.log(ws);
    else rmSync(ws, { recursive: true, force: true });
  });

  it('finds the series with the right labels and values through the query API', async () => {
    if (!promFound) throw new Error(`${PROMETHEUS} is missing, and CI must run this test: scripts/setup.sh installs Debian's prometheus package`);
    // A bad address fails the apply before anything starts.
    await expect(apply(plan([inst('web')]), opts({ metrics: '0.0.0.0:9464' }), () => undefined)).rejects.toThrow(/not a loopback address/);
    const port = await freePort();
    await apply(plan([inst('web', { label: 'orgA' }), inst('burn', { label: 'orgB' })]), opts({ metrics: `127.0.0.1:${port}` }), () => undefined);
    const s = await status(opts());
    expect(s.metrics).toEqual({ url: `http://127.0.0.1:${port}/metrics` });

    const promPort = await freePort();
    const config = join(ws, 'prometheus.yml');
    writeFileSync(config, `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mcl\n    static_configs:\n      - targets: ['127.0.0.1:${port}']\n`);
    prom = spawn(PROMETHEUS, [`--config.file=${config}`, `--storage.tsdb.path=${join(ws, 'tsdb')}`, `--web.listen-address=127.0.0.1:${promPort}`], { stdio: 'ignore' });
    const query = async (q: string) => {
      const r = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`);
      const j = (await r.json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
      return j.data.result;
    };
    let up: { metric: Record<string, string>; value: [number, string] }[] = [];
    const end = Date.now() + 60_000;
    while (Date.now() < end) {
      try {
        up = await query('mcl_clone_state');
        if (up.length >= 2 && (await query('mcl_ledger_cpu_seconds_total{instance_id="burn"} > 0')).length) break;
      } catch {
        // Prometheus is still starting.
      }
      await sleep(500);
    }
    const web = up.find((x) => x.metric.instance_id === 'web');
    expect(web?.metric).toMatchObject({ job: 'mcl', system: 'S', clone: '0', label: 'orgA', state: 'running' });
    expect(web?.value[1]).toBe('1');
    const [targetUp] = await query('up{job="mcl"}');
    expect(targetUp.value[1]).toBe('1');
    const forks = await query('mcl_fork_duration_seconds_count');
    expect(forks.map((x) => [x.metric.instance_id, x.value[1]]).sort()).toEqual([
      ['burn', '1'],
      ['web', '1'],
    ]);
    const pss = await query('mcl_clone_memory_bytes{kind="rss",instance_id="burn"}');
    expect(Number(pss[0].value[1])).toBeGreaterThan(0);
    const cpu = await query('mcl_ledger_cpu_seconds_total{instance_id="burn"}');
    expect(cpu[0].metric.label).toBe('orgB');
    expect(Number(cpu[0].value[1])).toBeGreaterThan(0);
  }, 120_000);
});
