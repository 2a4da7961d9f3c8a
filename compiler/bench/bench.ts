// `npm run bench`: parse, check and plan times for generated workspaces of
// 1,000 and 10,000 components, peak RSS, and parse throughput relative to
// JSON.parse of a JSON document of the same size, measured in the same run.
// The workspace is written to a temporary directory and read back through
// NodeHost, as `mclc plan` reads it, and `mclc plan` itself is timed in a
// process of its own.
//
// Usage: npm run bench [-- components...]   (default: 1000 10000)

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from '@mcl/language';
import { NodeHost } from '../src/node-host';
import { compile, type CompilerHost } from '../src/index';
import { generateWorkspace, type Workspace } from './generate';
import { generateWorkspace as generateLanguageWorkspace } from '../../language/bench/generate';

function languageWorkspace(n: number): Workspace & { target?: string } {
  const g = generateLanguageWorkspace({ components: n, files: Math.max(1, Math.round(n / 50)) });
  const files = Object.fromEntries(g.files.map((f) => [f.path, f.text]));
  // Its target is sized for small runs; give the larger ones a host they fit on (selected with options.target).
  files[g.main] += '\ntarget bench_huge {\n  backend kvm\n  memory 64TiB\n  vcpus 4096\n  overcommit 64\n}\n';
  return { files, entry: g.main, lines: g.lines, bytes: g.bytes, target: 'bench_huge' };
}

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const stdDir = join(repo, 'stdlib');

/** Writes the workspace to a fresh temporary directory and returns it. */
function writeWorkspace(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcl-bench-'));
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), text);
  }
  return dir;
}

/** The host `mclc` uses: files read from disk under the workspace root, the stdlib from `stdlib/`. */
function host(dir: string): CompilerHost {
  return new NodeHost({ root: dir, stdlib: stdDir });
}

function ms(t: number): string {
  return `${t.toFixed(0)} ms`;
}

/** A JSON document of about `bytes` characters, shaped like configuration data. */
function jsonOfSize(bytes: number): string {
  const items: unknown[] = [];
  let size = 2;
  for (let i = 0; size < bytes; i++) {
    const item = { id: `component-${i}`, memory: 67108864, vcpus: 1, label: 'internal', params: { threshold: i, name: `stage-${i}` }, ports: [{ name: 'input', direction: 'provide' }, { name: 'output', direction: 'require', optional: i % 2 === 0 }] };
    size += JSON.stringify(item).length + 1;
    items.push(item);
  }
  return JSON.stringify(items);
}

/**
 * Best of n runs, in wall-clock milliseconds and in CPU milliseconds of this
 * process (user + system). On a shared, loaded machine the CPU figure is the
 * steadier one; GC helper threads can make it exceed the wall-clock time.
 */
function best(n: number, f: () => void): number {
  let b = Infinity;
  let cpu = Infinity;
  collect();
  for (let i = 0; i < n; i++) {
    const c = process.cpuUsage();
    const t = performance.now();
    f();
    b = Math.min(b, performance.now() - t);
    const d = process.cpuUsage(c);
    cpu = Math.min(cpu, (d.user + d.system) / 1000);
    if (process.env.MCL_BENCH_TRACE) console.log(`    pass ${i}: ${(performance.now() - t).toFixed(0)} ms wall ${((d.user + d.system) / 1000).toFixed(0)} ms cpu`);
  }
  lastCpu = cpu;
  return b;
}
let lastCpu = 0;

/**
 * A full garbage collection (the bench runs with --expose-gc), so that what one
 * measurement left behind is not collected, and charged, during the next one:
 * after a full compile, the parser otherwise ran four times slower for several
 * passes while the collector worked through the compile's garbage.
 */
function collect(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function coldCompile(entry: string, dir: string, target: string | undefined): string {
  const c = process.cpuUsage();
  const t = performance.now();
  const r = compile(host(dir), { entries: [entry], mclcVersion: 'bench', target });
  const d = process.cpuUsage(c);
  return `  cold full compile ${ms(performance.now() - t)} wall ${ms((d.user + d.system) / 1000)} cpu, plan ${r.plan ? 'built' : 'MISSING'}; peak RSS after it ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`;
}

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
if (!process.env.MCL_BENCH_CHILD) {
  // One process per size, so peak RSS is that size's alone.
  // The compiler's own generator at both sizes, then the parser's generator (language/bench/generate.ts,
  // other shapes: more types and policies per file) at the larger size as a cross-check.
  const runs: [number, string][] = sizes.length ? sizes.map((n) => [n, 'compiler']) : [[1000, 'compiler'], [10000, 'compiler'], [10000, 'language']];
  for (const [n, gen] of runs) {
    const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1], String(n)], { stdio: 'inherit', env: { ...process.env, MCL_BENCH_CHILD: '1', MCL_BENCH_GEN: gen } });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
  process.exit(0);
}
for (const n of sizes) {
  const ws: Workspace & { target?: string } = process.env.MCL_BENCH_GEN === 'language' ? languageWorkspace(n) : generateWorkspace(n);
  const dir = writeWorkspace(ws.files);
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  // Parse the texts as read from disk: strings built by the generator have another
  // internal representation than file contents, and the lexer's speed differs on them.
  const texts = Object.keys(ws.files).map((p) => [p, readFileSync(join(dir, p), 'utf8')] as const);
  console.log(`\n${n} components (${process.env.MCL_BENCH_GEN === 'language' ? 'language/bench/generate.ts' : 'compiler/bench/generate.ts'}): ${texts.length} files, ${ws.lines} lines, ${(ws.bytes / 1e6).toFixed(2)} MB`);

  // The first, cold compile (what one `mclc plan` does): its time, and the peak RSS of the process after it.
  // In a function of its own so that its result is garbage afterwards: kept alive, the 400 MB of a
  // 10,000-component program made every later measurement several times slower, all in the collector.
  collect();
  console.log(coldCompile(ws.entry, dir, ws.target));

  // `mclc plan` as a user runs it: a process of its own (start-up, reading, compiling, writing the plan).
  {
    const t = performance.now();
    const args = [join(repo, 'cli', 'bin', 'mclc.mjs'), 'plan', ws.entry, '--root', dir, '--out', join(dir, 'bench.plan'), '--json'];
    if (ws.target) args.push('--target', ws.target);
    const r = spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 28 });
    const wall = performance.now() - t;
    if (r.status !== 0 && r.status !== 2) throw new Error(`mclc plan exited ${r.status}: ${r.stderr.slice(0, 2000)}`);
    console.log(`  mclc plan       ${ms(wall).padStart(8)} wall  (separate process: start-up, read ${Object.keys(ws.files).length} files, compile, write a ${(readFileSync(join(dir, 'bench.plan')).length / 1e6).toFixed(2)} MB plan)`);
  }

  // Throughput is a steady-state figure: a smaller workspace gets more passes (best of 50 at
  // 1,000 components, of 5 at 10,000), the same number for the parser and for JSON.parse.
  const passes = Math.max(5, Math.round(50_000 / n));
  const parseMs = best(passes, () => {
    for (const [p, t] of texts) parse(t, p);
  });
  const parseCpu = lastCpu;
  const json = jsonOfSize(ws.bytes);
  const jsonMs = best(passes, () => JSON.parse(json));
  const jsonCpu = lastCpu;

  let diagnostics = 0;
  const checkMs = best(3, () => {
    const r = compile(host(dir), { entries: [ws.entry], mclcVersion: 'bench', target: ws.target, emitPlan: false });
    diagnostics = r.diagnostics.length;
  });
  const checkCpu = lastCpu;
  let instances = 0;
  let channels = 0;
  let planBytes = 0;
  const fullMs = best(3, () => {
    const r = compile(host(dir), { entries: [ws.entry], mclcVersion: 'bench', target: ws.target });
    if (!r.plan) throw new Error(`no plan: ${r.diagnostics.slice(0, 3).map((d) => `${d.code} ${d.message}`).join('; ')}`);
    instances = r.plan.instances.length;
    channels = r.plan.channels.length;
    planBytes = JSON.stringify(r.plan).length;
  });
  const fullCpu = lastCpu;
  // One more full compile with a per-stage CPU breakdown.
  const phases: string[] = [];
  let mark = process.cpuUsage();
  const onPhase = (phase: string): void => {
    const d = process.cpuUsage(mark);
    phases.push(`${phase} ${((d.user + d.system) / 1000).toFixed(0)}`);
    mark = process.cpuUsage();
  };
  compile(host(dir), { entries: [ws.entry], mclcVersion: 'bench', target: ws.target, onPhase });
  const rss = process.resourceUsage().maxRSS * 1024;
  const both = (wall: number, cpu: number) => `${ms(wall).padStart(8)} wall ${ms(cpu).padStart(8)} cpu`;
  console.log(`  parse only      ${both(parseMs, parseCpu)}  (${(ws.bytes / 1e6 / (parseMs / 1000)).toFixed(1)} MB/s wall)`);
  console.log(`  JSON.parse      ${both(jsonMs, jsonCpu)}  for ${(json.length / 1e6).toFixed(2)} MB; parse throughput = ${((jsonMs / parseMs) * 100).toFixed(1)}% of JSON.parse (wall), ${((jsonCpu / parseCpu) * 100).toFixed(1)}% (cpu)`);
  console.log(`  check (no plan) ${both(checkMs, checkCpu)}  (parse + resolve + types + compose + policy; ${diagnostics} diagnostics)`);
  console.log(`  plan            ${both(Math.max(0, fullMs - checkMs), Math.max(0, fullCpu - checkCpu))}  (digests, canonical JSON: ${instances} instances, ${channels} channels, ${(planBytes / 1e6).toFixed(2)} MB plan)`);
  console.log(`  full compile    ${both(fullMs, fullCpu)}`);
  console.log(`  stages (cpu ms)  ${phases.join(', ')}`);
  console.log(`  peak RSS          ${(rss / 1024 / 1024).toFixed(0)} MiB (whole process at the end: every run above and the JSON document)`);
}
