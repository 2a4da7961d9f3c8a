// Link benchmark: the same channel (client.kv -> db.kv of the broker tests'
// plan) on one host, and across two hosts' brokers joined by the TLS link
// over loopback, in one run: messages per second with a window of calls in
// flight, and p50/p99 of one call at a time.
//
// Topology: one host: requester peer <-unix-> broker <-unix-> provider peer.
// Two hosts: requester peer <-unix-> broker a <-TLS link over 127.0.0.1-> broker b <-unix-> provider peer,
// so a call is checked by both brokers (as it is between real hosts). Everything runs in this one
// process and event loop, so the figures compare the two paths rather than measure either alone.
//
// Run: npm run bench:link   Options: --seconds N (throughput run, default 2), --calls N (latency samples,
// default 2000), --window N (calls in flight for throughput, default 32).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Plan } from '@mcl/plan';
import { Broker } from '../src/broker';
import { FakePort, kvHandler } from '../test/helpers';
import { linkedPair, twoHostPlan } from '../test/link-helpers';
import { numberOption as opt } from './options';

const SECONDS = opt('seconds', 2);
const CALLS = opt('calls', 2000);
const WINDOW = opt('window', 32);
const CH = 'client.kv->db.kv';

function benchPlan(): Plan {
  const plan = twoHostPlan();
  // The tests' channel allows 4 calls in flight and 300 ms: the benchmark's window needs more.
  plan.channels = plan.channels.map((c) => (c.id === CH ? { ...c, invariants: { ...c.invariants, max_inflight: WINDOW * 2, timeout_ms: 10_000 } } : c));
  return plan;
}

interface Result {
  perSecond: number;
  p50: number;
  p99: number;
}

async function drive(client: FakePort): Promise<Result> {
  let id = 0;
  const send = () => client.send({ t: 'call', op: 'get', id: ++id, body: { key: 'k' } });
  // Warm up (JIT, the link's first frames).
  for (let i = 0; i < 200; i++) {
    send();
    await client.next();
  }
  let got = 0;
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  for (let i = 0; i < WINDOW; i++) send();
  let sent = WINDOW;
  while (performance.now() < end) {
    const a = await client.next(10_000);
    if (a.t !== 'reply') throw new Error(`unexpected answer ${JSON.stringify(a)}`);
    got++;
    send();
    sent++;
  }
  const elapsed = performance.now() - t0;
  while (got < sent) {
    await client.next(10_000);
    got++;
  }
  const lat: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const t = performance.now();
    send();
    await client.next(10_000);
    lat.push(performance.now() - t);
  }
  lat.sort((a, b) => a - b);
  return { perSecond: (got / elapsed) * 1000, p50: lat[Math.floor(lat.length * 0.5)], p99: lat[Math.floor(lat.length * 0.99)] };
}

async function ports(dir: string, tag: string, provider: Broker, requester: Broker): Promise<FakePort[]> {
  const db = await FakePort.listen(join(dir, `${tag}-db.sock`));
  db.handler = kvHandler();
  const client = await FakePort.listen(join(dir, `${tag}-client.sock`));
  void provider.attachPort('db', 0, 'kv', db.path);
  void requester.attachPort('client', 0, 'kv', client.path);
  await db.connected();
  await client.connected();
  return [db, client];
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mcl-link-bench-'));
  try {
    const one = new Broker(benchPlan());
    const [db1, c1] = await ports(dir, 'one', one, one);
    const local = await drive(c1);
    await one.close();
    await db1.close();
    await c1.close();

    const pair = await linkedPair(benchPlan(), { pingIntervalMs: 1000 });
    const [db2, c2] = await ports(dir, 'two', pair.brokerB, pair.brokerA);
    const cross = await drive(c2);
    const link = pair.linksA.status()[0];
    await pair.close();
    await db2.close();
    await c2.close();

    const f = (n: number) => n.toFixed(3);
    console.log(`link benchmark: ${CH}, window ${WINDOW} for ${SECONDS} s, ${CALLS} calls one at a time`);
    console.log('path                          calls/s    p50 ms    p99 ms');
    console.log(`one host (one broker)      ${local.perSecond.toFixed(0).padStart(10)} ${f(local.p50).padStart(9)} ${f(local.p99).padStart(9)}`);
    console.log(`two hosts (TLS link)       ${cross.perSecond.toFixed(0).padStart(10)} ${f(cross.p50).padStart(9)} ${f(cross.p99).padStart(9)}`);
    console.log(`cross-host / one host: ${(cross.perSecond / local.perSecond).toFixed(2)}x throughput, +${f(cross.p50 - local.p50)} ms p50`);
    console.log(`link: ${link.frames_out} frames / ${link.bytes_out} bytes out, ${link.frames_in} frames / ${link.bytes_in} bytes in, ping ${link.latency_ms ?? '-'} ms`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  console.error(e.stack ?? String(e));
  process.exit(1);
});
