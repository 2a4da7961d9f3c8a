// Benchmark of run-time creation (run: npm run bench:factory): in one
// deployment on this machine's QEMU, a guest times, from its own request to
// the new instance's first answer, (a) a `create` on its factory port followed
// by a call to the created instance, and (b) an `open` of a session on a
// `per session pool 0` instance followed by a call (the per-session fork path
// without a warm clone: both fork on demand from the same template). The
// system is backends/kvm/bench/factory/bench.mcl.
//
// Options: --rounds N (default 5).

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { apply, destroy, logs } from '../src/lifecycle/commands';
import { compile } from '@mcl/compiler';
import { NodeHost } from '../../../compiler/src/node-host';
import { lifecycleOptions, until } from '../test/fixtures/vm';

const i = process.argv.indexOf('--rounds');
const ROUNDS = i >= 0 ? Number(process.argv[i + 1]) : 5;
const here = path.dirname(fileURLToPath(import.meta.url));

const ws = mkdtempSync(path.join(os.tmpdir(), 'mcl-factory-bench-'));
cpSync(path.join(here, 'factory'), ws, { recursive: true });
const maker = path.join(ws, 'maker.sh');
writeFileSync(maker, readFileSync(maker, 'utf8').replace('ROUNDS=${MCL_PARAM_ROUNDS:-5}', `ROUNDS=${ROUNDS}`));
// The standard library and the supervisor's entry point are found from this file rather than with the tests'
// fixtures: the bundle that runs a benchmark gives every module the benchmark's own location.
const repo = path.join(here, '../../..');
const supervisorCommand = [process.execPath, '--import', 'tsx', path.join(repo, 'cli/src/main.ts')];
const opts = lifecycleOptions(ws, { readyTimeoutMs: 180_000, supervisorCommand });
const planned = compile(new NodeHost({ root: ws, stdlib: path.join(repo, 'stdlib') }), { entries: ['bench.mcl'], mclcVersion: '0.1.0-bench' });
if (!planned.plan) throw new Error(`no plan for the benchmark:\n${planned.diagnostics.map((d) => `${d.code} ${d.message}`).join('\n')}`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  const t0 = Date.now();
  await apply(planned.plan, opts, () => undefined);
  console.log(`deployed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const text = await until(
    'the maker finished',
    async () => {
      const lines: string[] = [];
      await logs('maker', { ...opts, follow: false }, (l) => lines.push(l.text));
      const t = lines.join('\n');
      if (/bench error/.test(t)) throw new Error(t);
      return t.includes('bench done') ? t : undefined;
    },
    30 * 60_000,
  );
  const of = (kind: string) => [...text.matchAll(new RegExp(`bench ${kind} (\\d+)`, 'g'))].map((m) => Number(m[1]));
  const factory = of('factory');
  const session = of('session');
  console.log(`request to first answer, ${ROUNDS} rounds (ms, measured in the creating guest, 10 ms steps):`);
  console.log(`  factory create + call   median ${median(factory)}  all ${factory.join(' ')}`);
  console.log(`  session open + call     median ${median(session)}  all ${session.join(' ')}`);
} finally {
  await destroy(opts, () => undefined).catch(() => undefined);
  rmSync(ws, { recursive: true, force: true });
}
