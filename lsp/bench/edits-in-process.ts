// The language server benchmark's edits without the server: the same
// generated workspace and the same edits (alternately breaking and fixing a
// reference in one module) compiled in this process by an
// `IncrementalCompiler` with the server's options (index, no plan, parses
// cached), so that a compile can be profiled and traced on its own. Prints,
// for all edits and for the first 40 and the rest apart (a fresh process runs
// the compiler's code unoptimised at first), the wall and CPU time of each
// compile (CPU includes V8's background compiler and collector threads), and
// the wall time of each stage.
//
// Usage: npm run bench:edits -w @mcl/lsp [-- --lines 50000 --edits 120
//   --cpu-profile FILE --heap-profile FILE --from 0 --to 40 --each 10
//   --no-warm-up]
// With --each N, the first N edits are also printed one by one (wall, CPU,
// the plan objects and blocks the compile built and took over, each stage).
// With --cpu-profile (or --heap-profile, a sampling heap profile), the edits
// from `--from` up to, not including, `--to` are profiled and the profile
// written to FILE (Chrome DevTools' format). For V8's own traces, bundle and
// run it with node's flags (`--trace-opt --trace-deopt`, `--trace-gc`).

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IncrementalCompiler } from '@mcl/compiler';
import { warmEditPath } from '../src/analysis';
import { pct, WARM_UP } from './figures';
import { generateWorkspace } from './generate';
import { serverLikeHost } from './server-host';

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const LINES = Number(arg('lines') ?? 5000);
const EDITS = Number(arg('edits') ?? 120);
const CPU_PROFILE = arg('cpu-profile');
const HEAP_PROFILE = arg('heap-profile');
const FROM = Number(arg('from') ?? 0);
const TO = Math.min(EDITS, Number(arg('to') ?? WARM_UP));
const EACH = Number(arg('each') ?? 0);

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'mcl-edits-'));
  try {
    const ws = generateWorkspace(root, LINES);
    const original = readFileSync(join(root, ws.editFile), 'utf8');
    const broken = original.replace('provide kv: Kv', 'provide kv: Kvx');
    const { cache, host, edit: setText } = serverLikeHost(root, ws.editFile, broken);
    const stages = new Map<string, number[]>();
    let edit = -1;
    let mark = 0;
    const options = {
      entries: ws.files,
      mclcVersion: '0.1.0',
      emitPlan: false,
      cache,
      index: true,
      onPhase: (stage: string) => {
        const now = performance.now();
        if (edit >= 0) {
          let l = stages.get(stage);
          if (!l) stages.set(stage, (l = []));
          l[edit] = now - mark;
        }
        mark = now;
      },
    };
    const compiler = new IncrementalCompiler();
    const first = performance.now();
    const firstCpu = process.cpuUsage();
    compiler.compile(host, options);
    const firstUsed = process.cpuUsage(firstCpu);
    // As the server does after a project's first compile (Analyzer.warmUp), unless --no-warm-up: the
    // edited document compiled with the warming texts (its saved text is the original), then as it is.
    let warmUpMs: number | undefined;
    if (!args.includes('--no-warm-up')) {
      const warming = performance.now();
      warmEditPath(broken, original, (text) => {
        setText(text ?? broken);
        compiler.compile(host, options);
      });
      warmUpMs = performance.now() - warming;
    }
    console.log(
      `workspace: ${ws.files.length} files, ${ws.lines} lines; first compile ${(performance.now() - first).toFixed(0)} ms (CPU ${((firstUsed.user + firstUsed.system) / 1000).toFixed(0)} ms)${warmUpMs === undefined ? ', no warming' : `, then warming the edit path ${warmUpMs.toFixed(0)} ms`}; ${EDITS} edits`,
    );

    const session = new Session();
    const post = (method: string, params: object = {}) =>
      new Promise<{ profile?: unknown }>((resolve, reject) => session.post(method, params, (e, r) => (e ? reject(e) : resolve(r as { profile?: unknown }))));
    const profiling = CPU_PROFILE ?? HEAP_PROFILE;
    if (profiling) {
      session.connect();
      if (CPU_PROFILE) {
        await post('Profiler.enable');
        await post('Profiler.setSamplingInterval', { interval: 100 });
      }
    }
    const wall: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < EDITS; i++) {
      if (profiling && i === FROM) {
        if (CPU_PROFILE) await post('Profiler.start');
        else await post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
      }
      setText(i % 2 === 0 ? original : broken);
      edit = i;
      const c = process.cpuUsage();
      const t = performance.now();
      mark = t;
      compiler.compile(host, options);
      wall.push(performance.now() - t);
      const used = process.cpuUsage(c);
      cpu.push((used.user + used.system) / 1000);
      if (i < EACH) {
        const st = compiler.stats;
        const each = [...stages].flatMap(([stage, xs]) => (xs[i] === undefined ? [] : [`${stage} ${xs[i].toFixed(1)}`]));
        console.log(
          `edit ${String(i + 1).padStart(3)}: ${wall[i].toFixed(1).padStart(6)} ms, CPU ${cpu[i].toFixed(1).padStart(6)} ms; plan objects built ${st.planObjectsBuilt}, taken over ${st.planObjectsReused} (${st.planBlocksReused} blocks); ${each.join(', ')}`,
        );
      }
      if (profiling && i === TO - 1) {
        const r = await post(CPU_PROFILE ? 'Profiler.stop' : 'HeapProfiler.stopSampling');
        writeFileSync((CPU_PROFILE ?? HEAP_PROFILE)!, JSON.stringify(r.profile));
        console.log(`profile of edits ${FROM + 1}-${TO} written to ${CPU_PROFILE ?? HEAP_PROFILE}`);
      }
    }
    // A stage an edit does not reach (the policy checks while an error stops them) has no sample for it.
    const row = (name: string, xs: (number | undefined)[]) => {
      const parts = [xs, xs.slice(0, WARM_UP), xs.slice(WARM_UP)]
        .map((l) => l.filter((x): x is number => x !== undefined))
        .map((l) => (l.length ? `${pct(l, 50).toFixed(1).padStart(6)} /${pct(l, 95).toFixed(1).padStart(6)}` : ''.padStart(14)));
      console.log(`| ${name.padEnd(22)} | ${parts.join(' | ')} |`);
    };
    console.log(`| ${'ms, p50 / p95'.padEnd(22)} | ${'all edits'.padEnd(14)} | ${`edits 1-${WARM_UP}`.padEnd(14)} | ${`edits ${WARM_UP + 1}-${EDITS}`.padEnd(14)} |`);
    row('compile, wall', wall);
    row('compile, CPU', cpu);
    for (const [stage, xs] of stages) row(`  stage: ${stage}`, Array.from(xs));
    console.log(`CPU in all: ${cpu.reduce((a, b) => a + b, 0).toFixed(0)} ms (edits 1-${WARM_UP}: ${cpu.slice(0, WARM_UP).reduce((a, b) => a + b, 0).toFixed(0)} ms)`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
