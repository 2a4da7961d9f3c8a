// Broker benchmark: messages per second and added latency through the broker,
// against a plain relay that forwards the same frames line by line without
// any checks.
//
// Topology (both modes): requester peer <-unix socket-> [broker | relay] <-unix socket-> provider peer.
// The peers of all the paths run in one worker thread (their own event loop, the second core);
// the broker or relay runs on the main thread, alone. The requester keeps a
// window of calls in flight for throughput, and one at a time for latency. Both paths are set up
// side by side for each body size: their latency samples are taken in alternating blocks, so that
// load from elsewhere on the machine falls on both alike.
//
// Run: npm run bench:broker   (or: node scripts/run-ts.mjs backends/broker/bench/broker-bench.ts)
// Options: --seconds N (per throughput run, default 2), --blocks N (the throughput run of each path is
// taken in N blocks, the paths alternating, default 10, 1 with --profile), --calls N (latency samples, default 2000),
// --repeats N (runs of each configuration, default 3; the table shows medians),
// --only normal|flood (one part only), --flood-seconds N (per flood phase, default 3),
// --profile (samples the main thread during the throughput runs and prints, per body size, the
// functions that take its time, in microseconds per call, relay and broker side by side; --profile-rows N
// lists N of them, default 20),
// --allocations (samples what the main thread allocates during the throughput runs and prints the
// bytes per call of each path, and the broker's by function; the sampling slows every path, so the
// run's times are not comparable with others'),
// --baseline REV (also measures the broker of git revision REV, built from that revision's
// backends/broker/src, as a third path "baseline" in the same runs, and in the flood part as a second
// broker whose runs take turns with this one's: old and new under the same load).
// "main thread us/call" is the broker's (or relay's) busy time per call on its thread
// during the throughput run: steadier than calls/s when the machine is shared; "GC us/call" the
// garbage collector's pauses on that thread per call, and "scavenges per 1k calls" how often the
// young generation filled (it grows with what each call allocates, whatever the load).
//
// The flood part measures isolation: a paced requester (one call at a time, a
// millisecond apart) on its own clone, idle, then while another instance floods
// its own channel with junk frames, then while a sibling clone of the same
// requiring instance floods the shared channel with valid calls over its rate.
// It prints the paced requester's p50/p99 in each phase, the junk frames the
// broker checked per second, the paced requester's refused calls, and the CPU
// time the broker's thread and the flooders' thread were given per second of
// the phase (Linux), which tells whether the flooders took the cores the paced
// requester needs or the broker spent its time on the flood. With --baseline
// REV the broker of REV is measured too, its phases taken in turn with this
// broker's under the same load.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Session } from 'node:inspector/promises';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import type { Plan } from '@mcl/plan';
import { createRequire } from 'node:module';
import { Broker } from '../src/index';
// @ts-expect-error: the build scripts' options are plain JavaScript, without declarations.
import { esmShim, nodeBundleOptions } from '../../../scripts/esbuild-options.mjs';
import { numberOption as opt, textOption } from './options';

const SECONDS = opt('seconds', 2);
const CALLS = opt('calls', 2000);
/** Runs of each configuration, interleaved, so that a burst of load from elsewhere does not favour one path. */
const REPEATS = opt('repeats', 3);
const FLOOD_SECONDS = opt('flood-seconds', 3);
/** The latency samples of each path are taken in this many blocks, the relay's and the broker's alternating. */
const LATENCY_BLOCKS = 20;
/** The broker's targets against the plain relay: throughput ratio, and latency added at the 99th percentile. */
const TARGET_RATIO = 0.8;
const TARGET_ADDED_P99_MS = 0.1;
const ONLY = textOption('only');
const PROFILE = process.argv.includes('--profile');
/** Also samples what the main thread allocates during the throughput runs, by function (--allocations). */
const ALLOCATIONS = process.argv.includes('--allocations');
/** Functions listed per body size in the profile (--profile-rows). */
const PROFILE_ROWS = opt('profile-rows', 20);
/**
 * The throughput run of each path is taken in this many blocks, the paths alternating (--blocks). One when profiling
 * (unless asked otherwise): starting and stopping the profiler for every block costs the thread time of its own
 * (`dispatch`, the inspector's messages), which the profile and the busy time would count as the paths'.
 */
const THROUGHPUT_BLOCKS = Math.max(1, Math.round(opt('blocks', PROFILE || ALLOCATIONS ? 1 : 10)));
const BASELINE = textOption('baseline');
type Mode = 'relay' | 'broker' | 'baseline';
/** The paths each configuration measures: the relay, this broker, and the baseline revision's broker when asked for. */
const MODES: Mode[] = BASELINE ? ['relay', 'baseline', 'broker'] : ['relay', 'broker'];

const PEERS = `
const { parentPort } = require('node:worker_threads');
const net = require('node:net');
function lines(sock, onLine) {
  let buf = '';
  sock.setEncoding('utf8');
  sock.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\\n')) >= 0) { onLine(buf.slice(0, i)); buf = buf.slice(i + 1); }
  });
}
// The peers of every path measured (one requester and one provider each), by path number.
const paths = [];
function listen(m) {
  const st = { reqSock: null, onReply: null };
  paths[m.path] = st;
  // The provider: answers every call with an Ack, echoing the id it was given.
  const prov = net.createServer((s) => {
    lines(s, (l) => {
      const id = /"id":(\\d+)/.exec(l);
      if (id) s.write('{"t":"reply","id":' + id[1] + ',"body":{"ok":true}}\\n');
    });
  });
  const req = net.createServer((s) => { st.reqSock = s; lines(s, (l) => st.onReply && st.onReply(l)); parentPort.postMessage({ path: m.path, connected: true }); });
  prov.listen(m.provPath, () => req.listen(m.reqPath, () => parentPort.postMessage({ path: m.path, ready: true })));
}
parentPort.on('message', async (m) => {
  if (m.mode === 'listen') { listen(m); return; }
  const st = paths[m.path];
  const value = 'v'.repeat(m.payload);
  let nextId = 1;
  const frame = (id) => '{"t":"call","op":"put","id":' + id + ',"body":{"key":"k' + (id % 1000) + '","value":"' + value + '"}}\\n';
  if (m.mode === 'throughput') {
    let done = 0;
    const end = performance.now() + m.seconds * 1000;
    await new Promise((resolve) => {
      st.onReply = (l) => {
        done++;
        if (performance.now() >= end) { if (done >= nextId - 1) resolve(); return; }
        st.reqSock.write(frame(nextId++));
      };
      for (let i = 0; i < m.window; i++) st.reqSock.write(frame(nextId++));
    });
    parentPort.postMessage({ path: m.path, result: { calls: done, seconds: m.seconds } });
  } else {
    const rtts = [];
    await new Promise((resolve) => {
      let t0 = 0;
      const one = () => { t0 = performance.now(); st.reqSock.write(frame(nextId++)); };
      st.onReply = () => { rtts.push(performance.now() - t0); if (rtts.length >= m.calls) resolve(); else one(); };
      one();
    });
    parentPort.postMessage({ path: m.path, result: { rtts } });
  }
});
`;

function plan(): Plan {
  const ops = [{ name: 'put', kind: 'call' as const, input: 'b.Entry', output: 'b.Ack' }];
  const port = (name: string, direction: 'provide' | 'require') => ({ name, direction, protocol: 'b.Kv', slot: 1, channels: ['client.kv->db.kv'] });
  const inst = (id: string, p: ReturnType<typeof port>) => ({
    id, component: id, template: 't', memory_bytes: 0, vcpus: 1, mode: 'single' as const, replicas: 1,
    restart: { policy: 'never' as const, max_retries: 0 }, declassifies: [], params: {}, sensitive_params: [],
    program: { argv: [], env: {}, files: [] }, ports: [p], digest: '',
  });
  return {
    format_version: '1.0', mclc_version: 'bench', system: 'Bench',
    target: { name: 'local', backend: 'kvm', memory_bytes: 0, vcpus: 2, vcpu_overcommit: 1 },
    digests: { sources: '', invariants: '', plan: '' }, sources: [], images: [], templates: [],
    instances: [inst('client', port('kv', 'require')), inst('db', port('kv', 'provide'))],
    channels: [{
      id: 'client.kv->db.kv', from: { instance: 'client', port: 'kv' }, to: { instance: 'db', port: 'kv' }, protocol: 'b.Kv', ops,
      // A rate high enough never to refuse, so that the token bucket is on the measured path.
      invariants: { max_message_bytes: 1 << 20, rate: { per_second: 1e9, burst: 1e6 }, timeout_ms: 30_000, max_inflight: 1024, order: null },
    }],
    exposures: [],
    schemas: {
      'b.Entry': { kind: 'record', fields: [
        { name: 'key', optional: false, type: { kind: 'string', min_len: 1, max_len: 256, pattern: '[A-Za-z0-9._:/-]+' } },
        { name: 'value', optional: false, type: { kind: 'string', max_len: 1 << 20 } },
      ] },
      'b.Ack': { kind: 'record', fields: [{ name: 'ok', optional: false, type: { kind: 'bool' } }] },
    },
    checks: [], resources: { template_memory_bytes: 0, estimated_private_bytes: 0, estimated_total_bytes: 0, worst_case_bytes: 0, committed_vcpus: 0 },
    prior_state: null,
  };
}

/** The baseline: forwards whole lines both ways, unchanged, with no parsing, one write per received chunk. */
function plainRelay(reqPath: string, provPath: string): { close: () => void } {
  const a: Socket = createConnection(reqPath);
  const b: Socket = createConnection(provPath);
  const pump = (from: Socket, to: Socket) => {
    let rest: Buffer | null = null;
    from.on('data', (chunk: Buffer) => {
      const buf: Buffer = rest ? Buffer.concat([rest, chunk]) : chunk;
      const last = buf.lastIndexOf(10);
      if (last < 0) {
        rest = Buffer.from(buf);
        return;
      }
      // Forward every complete line of the chunk in one write, keep the partial one.
      to.write(buf.subarray(0, last + 1));
      rest = last + 1 < buf.length ? Buffer.from(buf.subarray(last + 1)) : null;
    });
  };
  pump(a, b);
  pump(b, a);
  return { close: () => { a.destroy(); b.destroy(); } };
}

/**
 * `cpuUs`: the main thread's busy time (event-loop utilisation) per call during the throughput run, where the broker
 * or relay runs alone; steadier than calls/s on a shared machine. `threadCpuUs`: the CPU time the main thread was given
 * per call over the same run (Linux, /proc/thread-self/stat; NaN elsewhere), which, unlike busy time, does not count
 * the time the thread waited for a core that others held.
 */
interface Run { mode: string; payload: number; perSec: number; p50: number; p99: number; cpuUs: number; threadCpuUs: number; gcUs: number; scavengesPer1k: number }

/**
 * The main thread's garbage collection during a run: its pauses in total (ms) and how many of them
 * were scavenges (of the young generation). How often the young generation fills depends on what
 * the path allocates per call, not on how busy the machine is.
 */
function gcWatch(): { stop: () => Promise<{ ms: number; scavenges: number }> } {
  let ms = 0;
  let scavenges = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      ms += e.duration;
      if (((e as { detail?: { kind?: number } }).detail)?.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  return {
    stop: async () => {
      // Entries are delivered after the pause: let the last ones in before counting.
      await new Promise((r) => setImmediate(r));
      obs.disconnect();
      return { ms, scavenges };
    },
  };
}

/**
 * The calling thread's time on a CPU in nanoseconds (the scheduler's own account, /proc/thread-self/schedstat), or NaN
 * where that is missing; written once as source text, so that the flooders' worker measures itself as the main thread does.
 */
const THREAD_RUN_NS = `function threadRunNs() {
  try {
    return Number(require('node:fs').readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]);
  } catch {
    return NaN;
  }
}`;
const threadRunNs = new Function('require', `${THREAD_RUN_NS}; return threadRunNs;`)(createRequire(import.meta.url)) as () => number;

/** The calling thread's CPU time in ms (user + system, 10 ms ticks), or NaN where /proc/thread-self is missing. */
function threadCpuMs(): number {
  try {
    const text = readFileSync('/proc/thread-self/stat', 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

function pct(xs: number[], q: number): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/**
 * The peers of the paths measured together, in one worker thread: each path has its own requester and provider
 * there, but they share the thread and its compiled code, so that how well the engine happened to optimise the
 * peers (which often limit calls/s) is the same for every path rather than drawn anew for each.
 */
class Peers {
  private readonly worker = new Worker(PEERS, { eval: true });
  private readonly waiting = new Map<number, ((m: Record<string, unknown>) => void)[]>();

  constructor() {
    this.worker.on('message', (m: Record<string, unknown>) => this.waiting.get(m.path as number)?.shift()?.(m));
  }

  /** The next message about path `path`. */
  next(path: number): Promise<Record<string, unknown>> {
    return new Promise((r) => {
      let q = this.waiting.get(path);
      if (!q) this.waiting.set(path, (q = []));
      q.push(r);
    });
  }

  post(path: number, m: Record<string, unknown>): void {
    this.worker.postMessage({ ...m, path });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/** One path under test (the relay or the broker between its own pair of peers), ready for calls. */
interface PathUnderTest {
  mode: Mode;
  post: (m: Record<string, unknown>) => void;
  nextMessage: () => Promise<Record<string, unknown>>;
  /** Throws when the broker refused any of the benchmark's frames. */
  check: () => void;
  close: () => Promise<void>;
}

/**
 * The Broker class of git revision `rev`: its backends/broker/src is written beside this one (so that its imports
 * resolve as this one's do), bundled as the benchmark is, loaded, and the copy removed.
 */
async function baselineBroker(rev: string, dir: string): Promise<typeof Broker> {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
  const src = mkdtempSync(join(root, 'backends/broker/.baseline-'));
  try {
    const files = execFileSync('git', ['ls-tree', '--name-only', rev, 'backends/broker/src/'], { cwd: root, encoding: 'utf8' }).trim().split('\n');
    for (const f of files) writeFileSync(join(src, basename(f)), execFileSync('git', ['show', `${rev}:${f}`], { cwd: root }));
    const out = join(dir, 'baseline-broker.mjs');
    const url = pathToFileURL(out).href;
    // esbuild is loaded from the checkout at run time: its API runs its own executable, found beside it, so it is not bundled.
    const { build } = createRequire(join(root, 'package.json'))('esbuild') as typeof import('esbuild');
    await build({ ...nodeBundleOptions, sourcemap: false, entryPoints: [join(src, 'index.ts')], outfile: out, format: 'esm', banner: { js: esmShim } });
    return ((await import(url)) as { Broker: typeof Broker }).Broker;
  } finally {
    rmSync(src, { recursive: true, force: true });
  }
}

let BaselineBroker: typeof Broker | null = null;

async function setUp(dir: string, mode: Mode, payload: number, peers: Peers, path: number): Promise<PathUnderTest> {
  const reqPath = join(dir, `${mode}-${payload}-req.sock`);
  const provPath = join(dir, `${mode}-${payload}-prov.sock`);
  const nextMessage = () => peers.next(path);
  const ready = nextMessage();
  peers.post(path, { mode: 'listen', reqPath, provPath });
  await ready;
  const connected = nextMessage();
  let stop: () => Promise<void> | void;
  let check = () => {};
  if (mode !== 'relay') {
    const broker = new (mode === 'baseline' ? BaselineBroker! : Broker)(plan());
    void broker.attachPort('db', 0, 'kv', provPath);
    void broker.attachPort('client', 0, 'kv', reqPath);
    stop = () => broker.close();
    check = () => {
      const c = broker.counters()[0];
      if (c.violations_total !== 0) throw new Error(`the benchmark's frames were refused: ${JSON.stringify(c.violations)}`);
    };
  } else {
    const relay = plainRelay(reqPath, provPath);
    stop = () => relay.close();
  }
  await connected;
  await new Promise((r) => setTimeout(r, 50));
  return {
    mode,
    post: (m) => peers.post(path, m),
    nextMessage,
    check,
    close: async () => {
      await stop();
    },
  };
}

async function normal(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mcl-broker-bench-'));
  const rows: Run[] = [];
  const profiler = new MainThreadProfiler(PROFILE || ALLOCATIONS);
  if (BASELINE) BaselineBroker = await baselineBroker(BASELINE, dir);
  try {
    for (let rep = 0; rep < REPEATS; rep++)
    for (const payload of [100, 4096]) {
      // Both paths are set up at once, each with its own peers: their throughput runs follow each other (in an
      // order that alternates between repeats), and their latency samples are taken in alternating blocks, so
      // that a burst of load from elsewhere on the machine falls on both and the added latency is the broker's.
      const peers = new Peers();
      const paths: PathUnderTest[] = [];
      for (const mode of MODES) paths.push(await setUp(dir, mode, payload, peers, paths.length));
      try {
        const results = new Map<string, { perSec: number; cpuUs: number; threadCpuUs: number; gcUs: number; scavengesPer1k: number; rtts: number[] }>();
        // The throughput run of each path is taken in blocks, the paths alternating (in an order that
        // also alternates), and added up: a burst of load from elsewhere falls on both paths alike
        // rather than on whichever path's whole run it happened to meet.
        const sums = new Map<string, { calls: number; seconds: number; busyMs: number; cpuMs: number; gcMs: number; scavenges: number }>();
        for (const p of paths) sums.set(p.mode, { calls: 0, seconds: 0, busyMs: 0, cpuMs: 0, gcMs: 0, scavenges: 0 });
        for (let block = 0; block < THROUGHPUT_BLOCKS; block++) {
          for (const p of (rep + block) % 2 === 0 ? paths : [...paths].reverse()) {
            await profiler.start();
            const elu0 = performance.eventLoopUtilization();
            const cpu0 = threadCpuMs();
            const gc = gcWatch();
            p.post({ mode: 'throughput', seconds: SECONDS / THROUGHPUT_BLOCKS, window: 64, payload });
            const t = (await p.nextMessage()).result as { calls: number; seconds: number };
            const busy = performance.eventLoopUtilization(elu0).active;
            const cpu = threadCpuMs() - cpu0;
            const g = await gc.stop();
            await profiler.stop(`${payload}`, p.mode, t.calls);
            const sum = sums.get(p.mode)!;
            sum.calls += t.calls;
            sum.seconds += t.seconds;
            sum.busyMs += busy;
            sum.cpuMs += cpu;
            sum.gcMs += g.ms;
            sum.scavenges += g.scavenges;
          }
        }
        for (const [mode, t] of sums) {
          results.set(mode, { perSec: t.calls / t.seconds, cpuUs: (t.busyMs * 1000) / t.calls, threadCpuUs: (t.cpuMs * 1000) / t.calls, gcUs: (t.gcMs * 1000) / t.calls, scavengesPer1k: (t.scavenges * 1000) / t.calls, rtts: [] });
        }
        const blocks = Math.max(1, Math.min(LATENCY_BLOCKS, CALLS));
        for (let i = 0; i < blocks; i++) {
          for (const p of paths) {
            const calls = Math.floor(((i + 1) * CALLS) / blocks) - Math.floor((i * CALLS) / blocks);
            p.post({ mode: 'latency', calls, payload });
            results.get(p.mode)!.rtts.push(...((await p.nextMessage()).result as { rtts: number[] }).rtts);
          }
        }
        for (const p of paths) {
          const r = results.get(p.mode)!;
          rows.push({ mode: p.mode, payload, perSec: r.perSec, p50: pct(r.rtts, 0.5), p99: pct(r.rtts, 0.99), cpuUs: r.cpuUs, threadCpuUs: r.threadCpuUs, gcUs: r.gcUs, scavengesPer1k: r.scavengesPer1k });
          p.check();
        }
      } finally {
        for (const p of paths) await p.close();
        await peers.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // Medians over the repeats, per (payload, mode).
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const all = rows.splice(0);
  const spread = new Map<string, [number, number]>();
  for (const payload of [100, 4096]) {
    for (const mode of MODES) {
      const rs = all.filter((r) => r.payload === payload && r.mode === mode);
      const per = rs.map((r) => r.perSec);
      spread.set(`${mode}${payload}`, [Math.min(...per), Math.max(...per)]);
      rows.push({ mode, payload, perSec: median(per), p50: median(rs.map((r) => r.p50)), p99: median(rs.map((r) => r.p99)), cpuUs: median(rs.map((r) => r.cpuUs)), threadCpuUs: median(rs.map((r) => r.threadCpuUs)), gcUs: median(rs.map((r) => r.gcUs)), scavengesPer1k: median(rs.map((r) => r.scavengesPer1k)) });
    }
  }
  const f = (x: number, d = 1) => x.toFixed(d);
  console.log(`broker vs plain relay: calls (call + reply) through one channel; window 64 for throughput (${SECONDS} s per path, in ${THROUGHPUT_BLOCKS} blocks, the paths alternating), 1 for latency (${CALLS} calls, the paths alternating in blocks of ${Math.ceil(CALLS / LATENCY_BLOCKS)}); medians of ${REPEATS} interleaved runs`);
  if (BASELINE) console.log(`baseline: the broker of ${BASELINE} (${execFileSync('git', ['rev-parse', '--short', BASELINE], { encoding: 'utf8' }).trim()}), measured in the same runs`);
  console.log('');
  console.log('| body  | path     | calls/s | (min-max)       | msgs/s  | rtt p50 ms | rtt p99 ms | vs relay | added p50 ms | added p99 ms | main thread us/call | main thread CPU us/call | main thread GC us/call | scavenges per 1k calls |');
  console.log('|-------|----------|---------|-----------------|---------|------------|------------|----------|--------------|--------------|---------------------|------------------------|------------------------|------------------------|');
  for (const r of rows) {
    const base = rows.find((x) => x.mode === 'relay' && x.payload === r.payload)!;
    const ratio = r.perSec / base.perSec;
    const added50 = r.mode === 'relay' ? '-' : f(r.p50 - base.p50, 3);
    const added99 = r.mode === 'relay' ? '-' : f(r.p99 - base.p99, 3);
    console.log(
      `| ${String(r.payload + 'B').padEnd(5)} | ${r.mode.padEnd(8)} | ${f(r.perSec, 0).padStart(7)} | ${spread.get(r.mode + r.payload)!.map((x) => f(x, 0)).join('-').padEnd(15)} | ${f(r.perSec * 2, 0).padStart(7)} | ${f(r.p50, 3).padStart(10)} | ${f(r.p99, 3).padStart(10)} | ${(f(ratio * 100, 0) + '%').padStart(8)} | ${added50.padStart(12)} | ${added99.padStart(12)} | ${f(r.cpuUs, 2).padStart(19)} | ${f(r.threadCpuUs, 2).padStart(22)} | ${f(r.gcUs, 2).padStart(22)} | ${f(r.scavengesPer1k, 1).padStart(22)} |`,
    );
  }
  const brokers = rows.filter((r) => r.mode === 'broker');
  const relayOf = (r: Run) => rows.find((x) => x.mode === 'relay' && x.payload === r.payload)!;
  const worst = Math.min(...brokers.map((r) => r.perSec / relayOf(r).perSec));
  // The relaying thread's busy time per call: the throughput each path could reach were it the only limit
  // (the peers' own thread is often the limit of calls/s, which then hides the broker's cost).
  const worstCpu = Math.min(...brokers.map((r) => relayOf(r).cpuUs / r.cpuUs));
  const worstThreadCpu = Math.min(...brokers.map((r) => relayOf(r).threadCpuUs / r.threadCpuUs));
  const worstAdded99 = Math.max(...brokers.map((r) => r.p99 - relayOf(r).p99));
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  console.log('');
  console.log(`target: broker throughput >= ${TARGET_RATIO * 100}% of the plain relay (calls/s, worst body size): ${f(worst * 100, 0)}% -> ${verdict(worst >= TARGET_RATIO)}`);
  console.log(`  the same from the relaying thread's busy time per call (relay / broker): ${f(worstCpu * 100, 0)}% -> ${verdict(worstCpu >= TARGET_RATIO)}`);
  console.log(`  the same from the relaying thread's CPU time per call (relay / broker): ${f(worstThreadCpu * 100, 0)}% -> ${verdict(worstThreadCpu >= TARGET_RATIO)}`);
  console.log(`target: added rtt p99 <= ${TARGET_ADDED_P99_MS} ms (worst body size): ${f(worstAdded99, 3)} ms -> ${verdict(worstAdded99 <= TARGET_ADDED_P99_MS)}`);
  if (BASELINE) {
    // Before and after, measured in the same runs: the relaying thread's CPU per call of each broker, and each one's ratio to the relay.
    console.log('');
    for (const r of brokers) {
      const b = rows.find((x) => x.mode === 'baseline' && x.payload === r.payload)!;
      const relay = relayOf(r);
      console.log(
        `${r.payload} B: main thread CPU us/call baseline ${f(b.threadCpuUs, 2)} -> broker ${f(r.threadCpuUs, 2)} (relay ${f(relay.threadCpuUs, 2)}: ${f((relay.threadCpuUs / b.threadCpuUs) * 100, 0)}% -> ${f((relay.threadCpuUs / r.threadCpuUs) * 100, 0)}%); busy us/call ${f(b.cpuUs, 2)} -> ${f(r.cpuUs, 2)}; GC us/call ${f(b.gcUs, 2)} -> ${f(r.gcUs, 2)}; calls/s ${f((b.perSec / relay.perSec) * 100, 0)}% -> ${f((r.perSec / relay.perSec) * 100, 0)}% of the relay; added p99 ${f(b.p99 - relay.p99, 3)} -> ${f(r.p99 - relay.p99, 3)} ms`,
      );
    }
  }
  profiler.print();
}

/**
 * Samples the main thread (the relay's or the broker's, alone on it) with V8's profiler during the
 * throughput runs, and adds up each function's own time per body size and path, so that the table
 * can say where the broker's time per call goes beside the relay's: `(idle)` is left out, `(program)`
 * and `(garbage collector)` are V8's own.
 */
class MainThreadProfiler {
  private readonly session: Session | null;
  /** Microseconds of own time by function, and calls, by `<payload> <mode>`. */
  private readonly totals = new Map<string, { calls: number; self: Map<string, number> }>();
  /** Bytes allocated by function (and its caller), and calls, by `<payload> <mode>` (--allocations). */
  private readonly allocated = new Map<string, { calls: number; self: Map<string, number> }>();

  constructor(on: boolean) {
    this.session = on ? new Session() : null;
    this.session?.connect();
  }

  async start(): Promise<void> {
    if (!this.session) return;
    await this.session.post('Profiler.enable');
    await this.session.post('Profiler.setSamplingInterval', { interval: 100 });
    await this.session.post('Profiler.start');
    if (ALLOCATIONS) {
      await this.session.post('HeapProfiler.enable');
      // Objects the young and old generation collectors freed are kept in the profile: what a call allocates and drops is the point.
      await this.session.post('HeapProfiler.startSampling', { samplingInterval: 64, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true } as never);
    }
  }

  async stop(payload: string, mode: string, calls: number): Promise<void> {
    if (!this.session) return;
    const { profile } = await this.session.post('Profiler.stop');
    const key = `${payload} ${mode}`;
    if (ALLOCATIONS) {
      const { profile: heap } = await this.session.post('HeapProfiler.stopSampling');
      let a = this.allocated.get(key);
      if (!a) this.allocated.set(key, (a = { calls: 0, self: new Map() }));
      a.calls += calls;
      const self = a.self;
      const name = (n: (typeof heap)['head']) => `${n.callFrame.functionName || '(anonymous)'}:${n.callFrame.lineNumber + 1}`;
      const walk = (n: (typeof heap)['head'], caller: string) => {
        const label = `${name(n)} <- ${caller}`;
        if (n.selfSize > 0) self.set(label, (self.get(label) ?? 0) + n.selfSize);
        for (const c of n.children) walk(c, name(n));
      };
      walk(heap.head, '');
    }
    let t = this.totals.get(key);
    if (!t) this.totals.set(key, (t = { calls: 0, self: new Map() }));
    t.calls += calls;
    const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
    const deltas = profile.timeDeltas ?? [];
    for (let i = 0; i < profile.samples!.length; i++) {
      const n = nodes.get(profile.samples![i])!;
      const name = n.callFrame.functionName || '(anonymous)';
      if (name === '(idle)') continue;
      const where = n.callFrame.url ? ` ${n.callFrame.url.split('/').pop()}:${n.callFrame.lineNumber + 1}` : '';
      // A named function of the benchmark's own bundle (or of the baseline's) is named alone; anonymous ones keep their place.
      const label = name === '(anonymous)' ? name + where : name + where.replace(/^ (?:\.broker-bench\.run|baseline-broker)\.mjs:\d+$/, '');
      t.self.set(label, (t.self.get(label) ?? 0) + (deltas[i] ?? 0));
    }
  }

  print(): void {
    if (!this.session) return;
    this.session.disconnect();
    if (ALLOCATIONS) this.printAllocations();
    if (!PROFILE) return;
    for (const payload of new Set([...this.totals.keys()].map((k) => k.split(' ')[0]))) {
      const relay = this.totals.get(`${payload} relay`);
      const broker = this.totals.get(`${payload} broker`);
      const baseline = this.totals.get(`${payload} baseline`);
      if (!relay || !broker) continue;
      const per = (t: typeof relay, name: string) => (t.self.get(name) ?? 0) / t.calls;
      const sum = (t: typeof relay) => [...t.self.values()].reduce((a, b) => a + b, 0) / t.calls;
      const names = [...new Set([...relay.self.keys(), ...broker.self.keys()])].sort((a, b) => per(broker, b) - per(broker, a));
      console.log('');
      console.log(`main thread profile, ${payload} B bodies: own time per call (us) of the functions that take the most, relay${baseline ? ', baseline' : ''} and broker (sampled every 0.1 ms)`);
      console.log('');
      // The baseline's column, when it was measured.
      const b = (text: (t: NonNullable<typeof baseline>) => string) => (baseline ? ` ${text(baseline)} |` : '');
      console.log(`| function                                           | relay us/call |${b(() => ' baseline us/call')} broker us/call |`);
      console.log(`|----------------------------------------------------|---------------|${b(() => '------------------')}----------------|`);
      for (const n of names.slice(0, PROFILE_ROWS)) console.log(`| ${n.slice(0, 50).padEnd(50)} | ${per(relay, n).toFixed(2).padStart(13)} |${b((t) => per(t, n).toFixed(2).padStart(16))} ${per(broker, n).toFixed(2).padStart(14)} |`);
      console.log(`| ${'all (idle excluded)'.padEnd(50)} | ${sum(relay).toFixed(2).padStart(13)} |${b((t) => sum(t).toFixed(2).padStart(16))} ${sum(broker).toFixed(2).padStart(14)} |`);
    }
  }

  /**
   * Bytes allocated per call on the main thread, by function (with its caller; line numbers are the bundle's), for each
   * path: the young generation fills, and is collected, as fast as calls allocate, whatever the load.
   */
  private printAllocations(): void {
    for (const payload of new Set([...this.allocated.keys()].map((k) => k.split(' ')[0]))) {
      const per = (mode: string) => this.allocated.get(`${payload} ${mode}`);
      const broker = per('broker');
      if (!broker) continue;
      const total = (t: NonNullable<typeof broker>) => [...t.self.values()].reduce((a, b) => a + b, 0) / t.calls;
      console.log('');
      console.log(`main thread allocations, ${payload} B bodies: bytes per call, ${MODES.map((m) => `${m} ${per(m) ? total(per(m)!).toFixed(0) : '-'}`).join(', ')}; the broker's by function (sampled every 64 bytes, freed objects included)`);
      console.log('');
      console.log('| function <- caller                                                     | broker B/call |');
      console.log('|------------------------------------------------------------------------|---------------|');
      for (const [label, bytes] of [...broker.self].sort((a, b) => b[1] - a[1]).slice(0, PROFILE_ROWS)) {
        console.log(`| ${label.slice(0, 70).padEnd(70)} | ${(bytes / broker.calls).toFixed(0).padStart(13)} |`);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Isolation under a flood

/**
 * The well-behaved side, in a worker: the provider (answers every call) and a
 * paced requester that sends one call, waits for its answer, waits a
 * millisecond, and so on, recording each round trip and each refusal.
 */
const PACED = `
const { workerData, parentPort } = require('node:worker_threads');
const net = require('node:net');
const { reqPath, provPath } = workerData;
function lines(sock, onLine) {
  let buf = '';
  sock.setEncoding('utf8');
  sock.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\\n')) >= 0) { onLine(buf.slice(0, i)); buf = buf.slice(i + 1); }
  });
}
const prov = net.createServer((s) => {
  lines(s, (l) => {
    const m = /"id":(\\d+)/.exec(l);
    if (m) s.write('{"t":"reply","id":' + m[1] + ',"body":{"ok":true}}\\n');
  });
});
let reqSock = null;
let onLine = null;
const req = net.createServer((s) => { reqSock = s; lines(s, (l) => onLine && onLine(l)); parentPort.postMessage({ connected: true }); });
prov.listen(provPath, () => req.listen(reqPath, () => parentPort.postMessage({ ready: true })));
parentPort.on('message', async (m) => {
  let nextId = 1;
  const rtts = [];
  let refused = 0;
  const end = performance.now() + m.seconds * 1000;
  await new Promise((resolve) => {
    let t0 = 0;
    const one = () => {
      if (performance.now() >= end) return resolve();
      t0 = performance.now();
      reqSock.write('{"t":"call","op":"put","id":' + nextId++ + ',"body":{"key":"k","value":"v"}}\\n');
    };
    onLine = (l) => {
      if (l.startsWith('{"t":"denied"')) refused++;
      else rtts.push(performance.now() - t0);
      setTimeout(one, 1);
    };
    one();
  });
  parentPort.postMessage({ result: { rtts, refused } });
});
`;

/**
 * The flooders, in a worker of their own: each listens on a port socket and,
 * once the broker connects, writes as fast as the socket takes it and throws
 * away what it reads. \`junk\` sends frames the broker refuses (unknown
 * operations, broken JSON, frames of the wrong direction); \`calls\` sends
 * valid calls, far over the channel's rate.
 */
const FLOODERS = `
const { workerData, parentPort } = require('node:worker_threads');
const net = require('node:net');
${THREAD_RUN_NS}
const junk = Buffer.from((
  '{"t":"call","op":"nope","id":1,"body":{}}\\n' +
  'not json\\n' +
  '{"t":"reply","id":3,"body":{}}\\n'
).repeat(1000));
const calls = Buffer.from(Array.from({ length: 1000 }, (_, i) => '{"t":"call","op":"put","id":' + i + ',"body":{"key":"k","value":"v"}}\\n').join(''));
let on = [];
const socks = [];
let listening = 0;
for (const [path, kind] of workerData.ports) {
  net.createServer((s) => {
    s.on('data', () => {});
    s.on('error', () => {});
    const buf = kind === 'junk' ? junk : calls;
    const go = () => { while (on.includes(kind) && !s.destroyed && s.write(buf)) {} };
    s.on('drain', go);
    socks.push(go);
    go();
    parentPort.postMessage({ connected: path });
  }).listen(path, () => { if (++listening === workerData.ports.length) parentPort.postMessage({ ready: true }); });
}
parentPort.on('message', (m) => {
  if (m.cpu) { parentPort.postMessage({ cpuNs: threadRunNs() }); return; }
  on = m.kinds;
  for (const go of socks) go();
});
`;

function floodPlan(): Plan {
  const p = plan();
  const ops = p.channels[0].ops;
  const port = (name: string, direction: 'provide' | 'require', channels: string[]) => ({ name, direction, protocol: 'b.Kv', slot: 1, channels });
  const inst = p.instances[0];
  p.instances = [
    { ...inst, id: 'client', component: 'client', mode: 'replicas', replicas: 2, ports: [port('kv', 'require', ['client.kv->db.kv'])] },
    { ...inst, id: 'db', component: 'db', ports: [port('kv', 'provide', ['client.kv->db.kv', 'flood.kv->db.kv'])] },
    { ...inst, id: 'flood', component: 'flood', ports: [port('kv', 'require', ['flood.kv->db.kv'])] },
  ];
  // A real rate on the shared channel: the paced requester stays far under it, the sibling far over.
  const invariants = { max_message_bytes: 1 << 20, rate: { per_second: 1000, burst: 100 }, timeout_ms: 30_000, max_inflight: 64, order: null };
  p.channels = [
    { id: 'client.kv->db.kv', from: { instance: 'client', port: 'kv' }, to: { instance: 'db', port: 'kv' }, protocol: 'b.Kv', ops, invariants },
    { id: 'flood.kv->db.kv', from: { instance: 'flood', port: 'kv' }, to: { instance: 'db', port: 'kv' }, protocol: 'b.Kv', ops, invariants },
  ];
  return p;
}

async function flood(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mcl-broker-flood-'));
  const reqPath = join(dir, 'client0.sock');
  const provPath = join(dir, 'db.sock');
  const junkPath = join(dir, 'flood.sock');
  const sibPath = join(dir, 'client1.sock');
  const paced = new Worker(PACED, { eval: true, workerData: { reqPath, provPath } });
  const flooders = new Worker(FLOODERS, { eval: true, workerData: { ports: [[junkPath, 'junk'], [sibPath, 'calls']] } });
  const inbox = (w: Worker) => {
    const queue: Record<string, unknown>[] = [];
    const waiters: ((m: Record<string, unknown>) => void)[] = [];
    w.on('message', (m) => (waiters.length ? waiters.shift()!(m) : queue.push(m)));
    return () => new Promise<Record<string, unknown>>((r) => (queue.length ? r(queue.shift()!) : waiters.push(r)));
  };
  const fromPaced = inbox(paced);
  const fromFlooders = inbox(flooders);
  const floodersCpuNs = async () => {
    flooders.postMessage({ cpu: true });
    return (await fromFlooders()).cpuNs as number;
  };
  // The brokers measured: this one, and the baseline revision's when asked for, each set up afresh for each run of the
  // three phases, the kinds taking turns, so that load from elsewhere falls on both alike.
  const kinds: ('broker' | 'baseline')[] = BASELINE ? ['baseline', 'broker'] : ['broker'];
  if (BASELINE) BaselineBroker = await baselineBroker(BASELINE, dir);
  try {
    await fromPaced();
    await fromFlooders();
    // Each flooder's port is attached for its phase only, so that what it left unread does not spill into the next.
    const floods: Record<string, { instance: string; clone: number; path: string; channel: string }> = {
      junk: { instance: 'flood', clone: 0, path: junkPath, channel: 'flood.kv->db.kv' },
      calls: { instance: 'client', clone: 1, path: sibPath, channel: 'client.kv->db.kv' },
    };
    const phase = async (broker: Broker, name: string, kind: string | null) => {
      const violations = (id: string) => broker.counters().find((c) => c.channel === id)!.violations_total;
      const fl = kind ? floods[kind] : null;
      if (fl) {
        flooders.postMessage({ kinds: [kind] });
        void broker.attachPort(fl.instance, fl.clone, 'kv', fl.path);
        await fromFlooders();
        await new Promise((r) => setTimeout(r, 200));
      }
      const v0 = fl ? violations(fl.channel) : 0;
      const f0 = await floodersCpuNs();
      const m0 = threadRunNs();
      const t0 = performance.now();
      paced.postMessage({ seconds: FLOOD_SECONDS });
      const r = (await fromPaced()).result as { rtts: number[]; refused: number };
      const seconds = (performance.now() - t0) / 1000;
      const mainMs = (threadRunNs() - m0) / 1e6 / seconds;
      const floodersMs = ((await floodersCpuNs()) - f0) / 1e6 / seconds;
      // The paced requester's own refusals are counted apart; the rest of the channel's are the flooder's.
      const checked = fl ? (violations(fl.channel) - v0 - (fl.instance === 'client' ? r.refused : 0)) / seconds : 0;
      if (fl) {
        flooders.postMessage({ kinds: [] });
        broker.detachPort(fl.instance, fl.clone, 'kv');
        await new Promise((res) => setTimeout(res, 200));
      }
      return { name, calls: r.rtts.length, refused: r.refused, p50: pct(r.rtts, 0.5), p99: pct(r.rtts, 0.99), checked, mainMs, floodersMs };
    };
    const names: [string, string | null][] = [['idle', null], ['junk flood (other instance)', 'junk'], ['call flood (sibling clone)', 'calls']];
    type PhaseRun = Awaited<ReturnType<typeof phase>>;
    const runs = new Map(kinds.map((k) => [k, names.map((): PhaseRun[] => [])]));
    for (let rep = 0; rep < REPEATS; rep++) {
      // The kinds' order alternates between repeats, so that neither always runs first.
      for (const k of rep % 2 === 0 ? kinds : [...kinds].reverse()) {
        const broker = new (k === 'baseline' ? BaselineBroker! : Broker)(floodPlan());
        try {
          const connected = fromPaced();
          void broker.attachPort('db', 0, 'kv', provPath);
          void broker.attachPort('client', 0, 'kv', reqPath);
          await connected;
          await new Promise((r) => setTimeout(r, 100));
          for (let i = 0; i < names.length; i++) runs.get(k)![i].push(await phase(broker, ...names[i]));
        } finally {
          await broker.close();
        }
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
    console.log('');
    console.log(`isolation: a paced requester (one call at a time, 1 ms apart, ${FLOOD_SECONDS} s per phase) while another instance floods junk or a sibling clone floods calls; medians of ${REPEATS} interleaved runs (refused: total)`);
    if (BASELINE) console.log(`baseline: the broker of ${BASELINE} (${execFileSync('git', ['rev-parse', '--short', BASELINE], { encoding: 'utf8' }).trim()}), its runs taking turns with this broker's`);
    console.log(`"broker CPU" and "flooders CPU": the time the broker's thread and the flooders' thread ran, in ms per second of the phase`);
    console.log('');
    console.log('| broker   | phase                        | calls | refused | p50 ms | p99 ms | p99 vs idle | flood frames refused/s | broker CPU | flooders CPU |');
    console.log('|----------|------------------------------|-------|---------|--------|--------|-------------|------------------------|------------|--------------|');
    const verdicts: string[] = [];
    for (const k of kinds) {
      const rows = runs.get(k)!.map((rs) => ({
        name: rs[0].name,
        calls: median(rs.map((r) => r.calls)),
        refused: rs.reduce((n, r) => n + r.refused, 0),
        p50: median(rs.map((r) => r.p50)),
        p99: median(rs.map((r) => r.p99)),
        checked: median(rs.map((r) => r.checked)),
        mainMs: median(rs.map((r) => r.mainMs)),
        floodersMs: median(rs.map((r) => r.floodersMs)),
      }));
      for (const r of rows) {
        console.log(
          `| ${k.padEnd(8)} | ${r.name.padEnd(28)} | ${String(r.calls).padStart(5)} | ${String(r.refused).padStart(7)} | ${f(r.p50, 3).padStart(6)} | ${f(r.p99, 3).padStart(6)} | ${(f(r.p99 / rows[0].p99, 2) + 'x').padStart(11)} | ${f(r.checked, 0).padStart(22)} | ${f(r.mainMs, 0).padStart(10)} | ${f(r.floodersMs, 0).padStart(12)} |`,
        );
      }
      const worst = Math.max(rows[1].p99, rows[2].p99) / rows[0].p99;
      const refused = rows[1].refused + rows[2].refused;
      verdicts.push(`${BASELINE ? `${k}: ` : ''}${f(worst, 2)}x, ${refused} refused -> ${worst <= 2 && refused === 0 ? 'met' : 'NOT met'}`);
    }
    console.log('');
    console.log(`target: the paced requester's p99 under a flood within 2x of idle and none of its calls refused; here ${verdicts.join('; ')}`);
  } finally {
    await paced.terminate();
    await flooders.terminate();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (ONLY !== 'flood') await normal();
  if (ONLY !== 'normal') await flood();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
