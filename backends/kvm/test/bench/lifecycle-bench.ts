// Figures of the deployment lifecycle on this host, for the webstack example
// (run: node scripts/run-ts.mjs backends/kvm/test/bench/lifecycle-bench.ts [--requests N]).
//
// Prints: the time of a first apply (supervisor start, template, 7 clones),
// of a no-op apply, of an apply that replaces one instance, of a restart after
// a guest is killed, and of destroy; HTTP latency through web -> auth ->
// handler -> app -> db; memory per clone and in total.

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readState } from '@mcl/plan/state-store';
import { apply, destroy, status } from '../../src/lifecycle/commands';
import type { BackendEvent } from '../../src/lifecycle/events';
import { planOf, repoRoot, withHostPorts, withWholePathPattern } from '../fixtures/plans';
import { http, lifecycleOptions, until } from '../fixtures/vm';

const i = process.argv.indexOf('--requests');
const REQUESTS = i >= 0 ? Number(process.argv[i + 1]) : 50;
const PORT = 28080 + (process.pid % 1000);
const ws = mkdtempSync(join(tmpdir(), 'mcl-lifecycle-bench-'));
cpSync(join(repoRoot, 'examples/webstack'), ws, { recursive: true });
const opts = lifecycleOptions(ws);
const plan = () => withHostPorts(withWholePathPattern(planOf(ws, 'webstack.mcl')), () => PORT);
/** The plan made against the current state, as `mclc plan` makes it once something is deployed (apply refuses it otherwise). */
const planAgainstState = () => {
  const st = readState(opts.stateFile);
  return st ? { ...plan(), prior_state: { lineage: st.lineage, serial: st.serial } } : plan();
};
const MiB = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

async function timed<T>(label: string, f: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const r = await f();
  console.log(`${label.padEnd(44)} ${(performance.now() - t0).toFixed(0).padStart(7)} ms`);
  return r;
}

try {
  const events: BackendEvent[] = [];
  const first = await timed('apply, first (7 clones)', () => apply(plan(), opts, (e) => events.push(e)));
  console.log(`  accelerator ${first.accelerator.name}`);
  for (const e of events) {
    if (e.type === 'template' && e.elapsed_ms !== undefined) console.log(`  template ${e.action} ${e.elapsed_ms} ms`);
  }
  const forks = events.filter((e) => e.type === 'instance' && e.action === 'ready').map((e) => e.elapsed_ms ?? 0);
  console.log(`  fork to ready per instance: median ${pct(forks, 0.5)} ms, max ${Math.max(...forks)} ms`);

  const auth = { authorization: 'Bearer demo-token' };
  await http(PORT, '/orders?item=book&quantity=1', { method: 'POST', headers: auth });
  const lat: number[] = [];
  for (let k = 0; k < REQUESTS; k++) {
    const t0 = performance.now();
    const r = await http(PORT, '/orders/1', { headers: auth });
    if (r.status !== 200) throw new Error(`GET /orders/1 answered ${r.status}: ${r.body}`);
    lat.push(performance.now() - t0);
  }
  console.log(`HTTP GET through 5 guests (${REQUESTS} requests)    p50 ${pct(lat, 0.5).toFixed(1)} ms, p90 ${pct(lat, 0.9).toFixed(1)} ms`);

  await timed('apply, nothing changed', () => apply(plan(), opts, () => undefined));
  const src = join(ws, 'webstack.mcl');
  writeFileSync(src, readFileSync(src, 'utf8').replace('max_quantity = 5', 'max_quantity = 6'));
  await timed('apply, one instance replaced', () => apply(planAgainstState(), opts, () => undefined));

  const s = await status(opts);
  const db = s.instances.find((x) => x.id === 'db')!.clones[0];
  await timed('restart of a killed guest (to running)', async () => {
    process.kill(db.pid!, 'SIGKILL');
    await until('db restarted', async () => {
      const c = (await status(opts)).instances.find((x) => x.id === 'db')!.clones[0];
      return c.state === 'running' && c.pid !== db.pid;
    });
  });

  const st = await status(opts);
  const clones = st.instances.flatMap((x) => x.clones);
  const avg = (f: (c: (typeof clones)[number]) => number | undefined) => clones.reduce((a, c) => a + (f(c) ?? 0), 0) / clones.length;
  console.log(`memory per clone (${clones.length})                      rss ${MiB(avg((c) => c.rss_bytes))}, pss ${MiB(avg((c) => c.pss_bytes))}, private ${MiB(avg((c) => c.private_bytes))}`);
  console.log(`memory total                                 rss ${MiB(st.totals.rss_bytes)}, pss ${MiB(st.totals.pss_bytes)}, private ${MiB(st.totals.private_bytes)}`);
  await timed('destroy', () => destroy(opts, () => undefined));
} finally {
  await destroy(opts, () => undefined).catch(() => undefined);
  rmSync(ws, { recursive: true, force: true });
}
