// Wall time and peak memory of the bundled `mclc` on workspaces of growing
// size: start-up, validate, plan (with a plan file and as JSON), graph, and
// the human rendering of many diagnostics. Run after `npm run build`:
//
//   node scripts/run-ts.mjs cli/bench/bench.ts [components...]
//
// Each figure is the median of three runs; memory is the peak RSS that
// /usr/bin/time reports for the whole process.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateWorkspace } from '../../compiler/bench/generate';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const bundle = join(repo, 'cli/dist/mclc.mjs');
if (!existsSync(bundle)) {
  console.error('cli/dist/mclc.mjs is missing: run `npm run build` first');
  process.exit(1);
}
const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const work = mkdtempSync(join(tmpdir(), 'mclc-bench-'));

function measure(args: string[], cwd: string): { ms: number; rssMiB: number; code: number } {
  const runs: { ms: number; rssMiB: number; code: number }[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, bundle, ...args], { cwd, encoding: 'utf8', maxBuffer: 1 << 30 });
    const ms = performance.now() - t0;
    const kib = Number(r.stderr.trim().split('\n').pop());
    runs.push({ ms, rssMiB: kib / 1024, code: r.status ?? -1 });
  }
  runs.sort((a, b) => a.ms - b.ms);
  return runs[1];
}

function row(name: string, m: { ms: number; rssMiB: number; code: number }): void {
  console.log(`${name.padEnd(44)} ${m.ms.toFixed(0).padStart(7)} ms ${m.rssMiB.toFixed(0).padStart(6)} MiB  exit ${m.code}`);
}

try {
  console.log(`mclc bench (${bundle}), median of 3 runs`);
  row('--version (start-up)', measure(['--version'], repo));
  row('validate examples/webstack', measure(['validate', 'examples/webstack'], repo));
  row('plan examples/webstack --json', measure(['plan', 'examples/webstack', '--json'], repo));
  row('graph examples/webstack --format svg', measure(['graph', 'examples/webstack', '--format', 'svg'], repo));
  for (const n of sizes.length ? sizes : [1000, 10000]) {
    const ws = generateWorkspace(n);
    const dir = join(work, `ws${n}`);
    for (const [path, text] of Object.entries(ws.files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    console.log(`\n${n} components, ${ws.lines} lines, ${(ws.bytes / 1048576).toFixed(1)} MiB of source`);
    row(`validate`, measure(['validate', '.'], dir));
    row(`plan --out`, measure(['plan', '.', '--out', join(work, 'p.plan')], dir));
    row(`plan --json`, measure(['plan', '.', '--json'], dir));
    row(`show PLANFILE`, measure(['show', join(work, 'p.plan')], dir));
    row(`graph (DOT)`, measure(['graph', '.'], dir));
    // Every file broken the same way: many diagnostics to render.
    for (const [path, text] of Object.entries(ws.files)) writeFileSync(join(dir, path), text.replace(/memory (\d+)MiB/g, 'memory = $1MiB'));
    row(`validate with many syntax errors (text)`, measure(['validate', '.'], dir));
    row(`validate with many syntax errors (sarif)`, measure(['validate', '.', '--format', 'sarif'], dir));
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
