// Broker benchmark: messages per second and added latency through the broker,
// against a plain relay that forwards the same frames line by line without
// any checks.
//
// Topology (both modes): requester peer <-unix socket-> [broker | relay] <-unix socket-> provider peer.
// The peers run in a worker thread (their own event loop, the second core);
// the broker or relay runs on the main thread, alone. The requester keeps a
// window of calls in flight for throughput, and one at a time for latency.
//
// Run: npm run bench:broker   (or: node scripts/run-ts.mjs backends/broker/bench/broker-bench.ts)
// Options: --seconds N (per throughput run, default 2), --calls N (latency samples, default 2000),
// --repeats N (runs of each configuration, default 3; the table shows medians).

import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Plan } from '@mcl/plan';
import { Broker } from '../src/index';

const args = process.argv.slice(2);
const opt = (name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const SECONDS = opt('seconds', 2);
const CALLS = opt('calls', 2000);
/** Runs of each configuration, interleaved, so that a burst of load from elsewhere does not favour one path. */
const REPEATS = opt('repeats', 3);

const PEERS = `
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
// The provider: answers every call with an Ack, echoing the id it was given.
const prov = net.createServer((s) => {
  lines(s, (l) => {
    const m = /"id":(\\d+)/.exec(l);
    if (m) s.write('{"t":"reply","id":' + m[1] + ',"body":{"ok":true}}\\n');
  });
});
let reqSock = null;
let onReply = null;
const req = net.createServer((s) => { reqSock = s; lines(s, (l) => onReply && onReply(l)); parentPort.postMessage({ connected: true }); });
prov.listen(provPath, () => req.listen(reqPath, () => parentPort.postMessage({ ready: true })));
parentPort.on('message', async (m) => {
  const value = 'v'.repeat(m.payload);
  let nextId = 1;
  const sent = new Map();
  const frame = (id) => '{"t":"call","op":"put","id":' + id + ',"body":{"key":"k' + (id % 1000) + '","value":"' + value + '"}}\\n';
  if (m.mode === 'throughput') {
    let done = 0;
    const end = performance.now() + m.seconds * 1000;
    await new Promise((resolve) => {
      onReply = (l) => {
        done++;
        if (performance.now() >= end) { if (done >= nextId - 1) resolve(); return; }
        reqSock.write(frame(nextId++));
      };
      for (let i = 0; i < m.window; i++) reqSock.write(frame(nextId++));
    });
    parentPort.postMessage({ result: { calls: done, seconds: m.seconds } });
  } else {
    const rtts = [];
    await new Promise((resolve) => {
      let t0 = 0;
      const one = () => { t0 = performance.now(); reqSock.write(frame(nextId++)); };
      onReply = () => { rtts.push(performance.now() - t0); if (rtts.length >= m.calls) resolve(); else one(); };
      one();
    });
    parentPort.postMessage({ result: { rtts } });
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

interface Run { mode: string; payload: number; perSec: number; p50: number; p99: number }

function pct(xs: number[], q: number): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mcl-broker-bench-'));
  const rows: Run[] = [];
  try {
    for (let rep = 0; rep < REPEATS; rep++)
    for (const payload of [100, 4096]) {
      for (const mode of ['relay', 'broker'] as const) {
        const reqPath = join(dir, `${mode}-${payload}-req.sock`);
        const provPath = join(dir, `${mode}-${payload}-prov.sock`);
        const w = new Worker(PEERS, { eval: true, workerData: { reqPath, provPath } });
        const messages: ((m: Record<string, unknown>) => void)[] = [];
        w.on('message', (m) => messages.shift()?.(m));
        const nextMessage = () => new Promise<Record<string, unknown>>((r) => messages.push(r));
        await nextMessage(); // ready
        const connected = nextMessage();
        let close: () => Promise<void> | void;
        if (mode === 'broker') {
          const broker = new Broker(plan());
          void broker.attachPort('db', 0, 'kv', provPath);
          void broker.attachPort('client', 0, 'kv', reqPath);
          close = () => broker.close();
          await connected;
          await new Promise((r) => setTimeout(r, 50));
          const c = () => broker.counters()[0];
          w.postMessage({ mode: 'throughput', seconds: SECONDS, window: 64, payload });
          const t = (await nextMessage()).result as { calls: number; seconds: number };
          w.postMessage({ mode: 'latency', calls: CALLS, payload });
          const l = (await nextMessage()).result as { rtts: number[] };
          rows.push({ mode, payload, perSec: t.calls / t.seconds, p50: pct(l.rtts, 0.5), p99: pct(l.rtts, 0.99) });
          if (c().violations_total !== 0) throw new Error(`the benchmark's frames were refused: ${JSON.stringify(c().violations)}`);
        } else {
          const relay = plainRelay(reqPath, provPath);
          close = () => relay.close();
          await connected;
          await new Promise((r) => setTimeout(r, 50));
          w.postMessage({ mode: 'throughput', seconds: SECONDS, window: 64, payload });
          const t = (await nextMessage()).result as { calls: number; seconds: number };
          w.postMessage({ mode: 'latency', calls: CALLS, payload });
          const l = (await nextMessage()).result as { rtts: number[] };
          rows.push({ mode, payload, perSec: t.calls / t.seconds, p50: pct(l.rtts, 0.5), p99: pct(l.rtts, 0.99) });
        }
        await close();
        await w.terminate();
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
    for (const mode of ['relay', 'broker']) {
      const rs = all.filter((r) => r.payload === payload && r.mode === mode);
      const per = rs.map((r) => r.perSec);
      spread.set(`${mode}${payload}`, [Math.min(...per), Math.max(...per)]);
      rows.push({ mode, payload, perSec: median(per), p50: median(rs.map((r) => r.p50)), p99: median(rs.map((r) => r.p99)) });
    }
  }
  const f = (x: number, d = 1) => x.toFixed(d);
  console.log(`broker vs plain relay: calls (call + reply) through one channel; window 64 for throughput (${SECONDS} s), 1 for latency (${CALLS} calls); medians of ${REPEATS} interleaved runs`);
  console.log('');
  console.log('| body  | path   | calls/s | (min-max)       | msgs/s  | rtt p50 ms | rtt p99 ms | vs relay | added p50 ms | added p99 ms |');
  console.log('|-------|--------|---------|-----------------|---------|------------|------------|----------|--------------|--------------|');
  for (const r of rows) {
    const base = rows.find((x) => x.mode === 'relay' && x.payload === r.payload)!;
    const ratio = r.perSec / base.perSec;
    const added50 = r.mode === 'relay' ? '-' : f(r.p50 - base.p50, 3);
    const added99 = r.mode === 'relay' ? '-' : f(r.p99 - base.p99, 3);
    console.log(
      `| ${String(r.payload + 'B').padEnd(5)} | ${r.mode.padEnd(6)} | ${f(r.perSec, 0).padStart(7)} | ${spread.get(r.mode + r.payload)!.map((x) => f(x, 0)).join('-').padEnd(15)} | ${f(r.perSec * 2, 0).padStart(7)} | ${f(r.p50, 3).padStart(10)} | ${f(r.p99, 3).padStart(10)} | ${(f(ratio * 100, 0) + '%').padStart(8)} | ${added50.padStart(12)} | ${added99.padStart(12)} |`,
    );
  }
  const worst = Math.min(...rows.filter((r) => r.mode === 'broker').map((r) => r.perSec / rows.find((x) => x.mode === 'relay' && x.payload === r.payload)!.perSec));
  console.log('');
  console.log(`target: broker throughput >= 50% of the plain relay; worst case here ${f(worst * 100, 0)}% -> ${worst >= 0.5 ? 'met' : 'NOT met'}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
