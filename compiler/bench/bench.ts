// `npm run bench`: parse, check and plan times for generated workspaces of
// 1,000 and 10,000 components, peak RSS, and parse throughput relative to
// JSON.parse of a JSON document of the same size, measured in the same run.
// The workspace is written to a temporary directory and read back through
// NodeHost, as `mclc plan` reads it, and `mclc plan` itself is timed in a
// process of its own: the whole process's wall time against the target and
// against the floor of any such process (Node starting, reading the sources
// and writing a plan of the same size), and where its time goes, stage by
// stage (MCL_TIMINGS, cli/src/timings.ts). The syntax layer's cold costs
// (building the parser, lexing, parsing) are measured in a fresh process too.
//
// `mclc validate --watch` runs on the workspace too (a process of its own): its
// first check, then edits of one module file, each timed from the write to the
// round's result on standard output: what the command line's incremental
// analysis costs an edit, against the first check of the same process.
//
// With --profile, one more `mclc plan` per size runs under `node --cpu-prof`
// and the bench prints where its main thread's time went: the collector, and
// the functions with the most time of their own.
//
// Usage: npm run bench [-- [--profile] components...]   (default: 1000 10000)

import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from '@mcl/language';
import { lex } from '../../language/src/lexer';
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

/** The whole-process target of `mclc plan` on the 10,000-component workspace. */
const PLAN_TARGET_MS = 1000;

function cpuNow(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * MCL_BENCH_SYNTAX=DIR: this process only measures the syntax layer as a cold
 * `mclc plan` meets it (the parser's construction with its grammar analysis,
 * then lexing every file, then parsing every file) and prints one JSON line.
 */
const syntaxDir = process.env.MCL_BENCH_SYNTAX;
if (syntaxDir) {
  const files = JSON.parse(process.env.MCL_BENCH_FILES ?? '[]') as string[];
  const texts = files.map((p) => [p, readFileSync(join(syntaxDir, p), 'utf8')] as const);
  const stage = (f: () => void): { wall: number; cpu: number } => {
    const w = performance.now();
    const c = cpuNow();
    f();
    return { wall: performance.now() - w, cpu: cpuNow() - c };
  };
  const construct = stage(() => parse('', 'empty.mcl'));
  const lexing = stage(() => {
    for (const [p, t] of texts) lex(t, p);
  });
  // The trees are kept, as the compiler keeps them: the collector copying the trees that survive is
  // most of what a cold parse costs beyond lexing and parsing (about 600 ms of CPU for this workspace).
  const trees: unknown[] = [];
  const parsing = stage(() => {
    for (const [p, t] of texts) trees.push(parse(t, p));
  });
  console.log(JSON.stringify({ construct, lexing, parsing }));
  process.exit(0);
}

/**
 * The least any `mclc plan` process does (Node starting, reading every
 * source, writing a plan of the same size), as a script of its own so that
 * its start-up is Node's alone; timed from outside as mclc is.
 */
const FLOOR_SCRIPT = `const fs = require('node:fs'), path = require('node:path');
const dir = process.env.MCL_BENCH_FLOOR;
for (const p of JSON.parse(process.env.MCL_BENCH_FILES)) fs.readFileSync(path.join(dir, p), 'utf8');
fs.writeFileSync(path.join(dir, 'floor.plan'), fs.readFileSync(path.join(dir, 'bench.plan'), 'utf8'));`;

interface Timings {
  stages: { stage: string; wall_ms: number; cpu_ms: number; main_ms?: number; gc_ms?: number }[];
  gc_ms: number;
  total_wall_ms: number;
  total_cpu_ms: number;
  total_main_ms?: number;
}

/** Times a process from outside; returns its wall-clock milliseconds. */
function timeProcess(args: string[], env: NodeJS.ProcessEnv, cwd: string): number {
  const t = performance.now();
  const r = spawnSync(process.execPath, args, { cwd, env, encoding: 'utf8', maxBuffer: 1 << 28 });
  const wall = performance.now() - t;
  if (r.status !== 0 && r.status !== 2) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr.slice(0, 2000)}`);
  return wall;
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * Where the main thread of one `mclc plan` spent its time, from a V8 CPU
 * profile: the collector, and the functions with the most time of their own
 * (by name and file, the bundle's line numbers left out so that the lines are
 * comparable between builds). Sample intervals are wall-clock time, so a loaded
 * machine stretches every line alike.
 */
function printProfile(p: CpuProfile, top = 15): void {
  const frame = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
  const self = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const f = frame.get(p.samples[i]);
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    total += dt;
    if (!f) continue;
    const file = f.url.split('/').pop()?.replace(/^chunk-[A-Z0-9]+\.mjs$/, 'mclc') ?? '';
    const key = `${f.functionName || '(anonymous)'}${file ? ` (${file})` : ''}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  }
  console.log(`  profile of one mclc plan (node --cpu-prof, main thread, ${ms(total)} sampled; time of each function's own):`);
  for (const [k, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`    ${ms(t).padStart(8)} ${((t / total) * 100).toFixed(1).padStart(5)}%  ${k}`);
  }
}

/** One round of `mclc validate --watch --json`, as printed, and when its line arrived. */
interface WatchLine {
  at: number;
  doc: { round?: number; valid?: boolean; changed?: string[]; elapsed_ms?: number; modules?: { checked: number; taken_over: number }; error?: unknown };
}

/**
 * `mclc validate --watch --json` on the workspace: the first check, then `edits` edits of one
 * module file, alternately breaking one of its references and mending it, each timed from the
 * write to the round's line (the watcher's settling time included).
 */
async function watchEdits(dir: string, entry: string, file: string, target: string | undefined, edits: number) {
  const args = [join(repo, 'cli', 'bin', 'mclc.mjs'), 'validate', '--watch', '--json', entry, '--root', dir, ...(target ? ['--target', target] : [])];
  const started = performance.now();
  const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: WatchLine[] = [];
  let wake: (() => void) | undefined;
  let rest = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    rest += chunk;
    for (let i = rest.indexOf('\n'); i >= 0; i = rest.indexOf('\n')) {
      lines.push({ at: performance.now(), doc: JSON.parse(rest.slice(0, i)) as WatchLine['doc'] });
      rest = rest.slice(i + 1);
      wake?.();
    }
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => (resolve(), wake?.())));
  const next = async (): Promise<WatchLine> => {
    while (lines.length === 0) {
      if (child.exitCode !== null) throw new Error('mclc validate --watch exited');
      await new Promise<void>((r) => (wake = r));
    }
    return lines.shift()!;
  };
  try {
    const first = await next();
    if (first.doc.error || !first.doc.valid) throw new Error(`the first check did not pass: ${JSON.stringify(first.doc).slice(0, 500)}`);
    const path = join(dir, file);
    const original = readFileSync(path, 'utf8');
    const broken = original.replace('provide input: Step', 'provide input: Stepx');
    const rounds: { ms: number; compileMs: number; checked: number; takenOver: number }[] = [];
    for (let i = 0; i < edits; i++) {
      const breaking = i % 2 === 0;
      writeFileSync(path, breaking ? broken : original);
      const t0 = performance.now();
      let line = await next();
      // A round that saw the file half written is followed by the one that saw all of it.
      while (line.doc.valid !== !breaking) line = await next();
      rounds.push({ ms: line.at - t0, compileMs: line.doc.elapsed_ms ?? NaN, checked: line.doc.modules?.checked ?? NaN, takenOver: line.doc.modules?.taken_over ?? NaN });
    }
    return { firstMs: first.at - started, firstCompileMs: first.doc.elapsed_ms ?? NaN, firstModules: first.doc.modules, rounds };
  } finally {
    child.kill('SIGINT');
    await exited;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
if (!process.env.MCL_BENCH_CHILD) {
  // One process per size, so peak RSS is that size's alone.
  // The compiler's own generator at both sizes, then the parser's generator (language/bench/generate.ts,
  // other shapes: more types and policies per file) at the larger size as a cross-check.
  const runs: [number, string][] = sizes.length ? sizes.map((n) => [n, 'compiler']) : [[1000, 'compiler'], [10000, 'compiler'], [10000, 'language']];
  for (const [n, gen] of runs) {
    const env = { ...process.env, MCL_BENCH_CHILD: '1', MCL_BENCH_GEN: gen, ...(process.argv.includes('--profile') ? { MCL_BENCH_PROFILE: '1' } : {}) };
    const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1], String(n)], { stdio: 'inherit', env });
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

  // `mclc plan` as a user runs it: a process of its own (start-up, reading, compiling, writing the plan),
  // three times, with the floor of such a process and a cold syntax-layer process in between, so that
  // all of them see the same machine. Figures are the median of the three.
  {
    const sourceFiles = Object.keys(ws.files);
    const filesEnv = JSON.stringify(sourceFiles);
    const args = [join(repo, 'cli', 'bin', 'mclc.mjs'), 'plan', ws.entry, '--root', dir, '--out', join(dir, 'bench.plan'), '--json'];
    if (ws.target) args.push('--target', ws.target);
    const runs: { wall: number; timings: Timings }[] = [];
    const floors: number[] = [];
    const syntax: { construct: { wall: number; cpu: number }; lexing: { wall: number; cpu: number }; parsing: { wall: number; cpu: number } }[] = [];
    for (let i = 0; i < 3; i++) {
      const timingsFile = join(dir, `timings-${i}.json`);
      const wall = timeProcess(args, { ...process.env, MCL_TIMINGS: timingsFile }, dir);
      runs.push({ wall, timings: JSON.parse(readFileSync(timingsFile, 'utf8')) as Timings });
      floors.push(timeProcess(['-e', FLOOR_SCRIPT], { ...process.env, MCL_BENCH_FLOOR: dir, MCL_BENCH_FILES: filesEnv }, dir));
      const r = spawnSync(process.execPath, [...process.execArgv, process.argv[1]], { cwd: dir, encoding: 'utf8', env: { ...process.env, MCL_BENCH_SYNTAX: dir, MCL_BENCH_FILES: filesEnv } });
      if (r.status !== 0) throw new Error(`the syntax measurement failed: ${r.stderr.slice(0, 2000)}`);
      syntax.push(JSON.parse(r.stdout.trim().split('\n').at(-1)!));
    }
    const wall = median(runs.map((r) => r.wall));
    const floor = median(floors);
    const planMb = readFileSync(join(dir, 'bench.plan')).length / 1e6;
    const target = n >= 10000 ? `target <= ${PLAN_TARGET_MS / 1000} s: ${wall <= PLAN_TARGET_MS ? 'met' : 'NOT met'}` : `no target at this size`;
    console.log(`  mclc plan       ${ms(wall).padStart(8)} wall  (${target}; median of ${runs.length} runs, each a separate process: start-up, read ${sourceFiles.length} files, compile, write a ${planMb.toFixed(2)} MB plan)`);
    console.log(`  baseline        ${ms(floor).padStart(8)} wall  (the floor of such a process: Node starting, reading the sources and writing ${planMb.toFixed(2)} MB; mclc plan = ${(wall / floor).toFixed(1)}x the floor)`);
    console.log(`  mclc plan by stage (median of ${runs.length} runs; cpu counts every thread of the process, the collector's helpers too):`);
    const names = runs[0].timings.stages.map((x) => x.stage).filter((x, i, a) => a.indexOf(x) === i);
    const of = (t: Timings, name: string, key: 'wall_ms' | 'cpu_ms' | 'main_ms' | 'gc_ms') => t.stages.filter((x) => x.stage === name).reduce((a, x) => a + (x[key] ?? NaN), 0);
    // main: the main thread's own CPU time (cpu less what V8's compiler thread and the collector's helpers
    // did meanwhile); gc: its pauses for the collector that began in the stage (part of its wall time).
    const hasMain = runs.every((r) => r.timings.total_main_ms !== undefined);
    const cell = (v: number) => (Number.isNaN(v) ? '' : ms(v)).padStart(8);
    console.log(`    ${'stage'.padEnd(18)} ${'wall'.padStart(8)} ${'cpu'.padStart(8)}${hasMain ? ` ${'main'.padStart(8)}` : ''} ${'gc'.padStart(8)}`);
    for (const name of names) {
      const w = median(runs.map((r) => of(r.timings, name, 'wall_ms')));
      const c = median(runs.map((r) => of(r.timings, name, 'cpu_ms')));
      const m = median(runs.map((r) => of(r.timings, name, 'main_ms')));
      const g = median(runs.map((r) => of(r.timings, name, 'gc_ms')));
      console.log(`    ${name.padEnd(18)} ${ms(w).padStart(8)} ${ms(c).padStart(8)}${hasMain ? ` ${cell(m)}` : ''} ${ms(g).padStart(8)}`);
    }
    console.log(`    ${'total'.padEnd(18)} ${ms(median(runs.map((r) => r.timings.total_wall_ms))).padStart(8)} ${ms(median(runs.map((r) => r.timings.total_cpu_ms))).padStart(8)}${hasMain ? ` ${ms(median(runs.map((r) => r.timings.total_main_ms!))).padStart(8)}` : ''}   (inside the process; of which paused for garbage collection: ${ms(median(runs.map((r) => r.timings.gc_ms)))})`);
    const sx = (k: 'construct' | 'lexing' | 'parsing') => `${ms(median(syntax.map((x) => x[k].wall))).padStart(8)} wall ${ms(median(syntax.map((x) => x[k].cpu))).padStart(8)} cpu`;
    console.log(`  syntax layer, cold (a fresh process, as mclc plan meets it):`);
    console.log(`    parser built    ${sx('construct')}  (Chevrotain's grammar recording and follow sets, once per process; each lookahead decision is built when parsing first reaches it)`);
    console.log(`    lex all files   ${sx('lexing')}`);
    console.log(`    parse all files ${sx('parsing')}  (lexing again, now warm, and parsing, the trees kept as the compiler keeps them)`);
    if (process.env.MCL_BENCH_PROFILE) {
      const profDir = join(dir, 'prof');
      timeProcess(['--cpu-prof', '--cpu-prof-dir', profDir, ...args], process.env, dir);
      const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
      if (file) printProfile(JSON.parse(readFileSync(join(profDir, file), 'utf8')) as CpuProfile);
    }
  }

  // The command line's incremental analysis: `mclc validate --watch`, an edit of one module file at a time.
  const edited = Object.keys(ws.files).find((f) => f !== ws.entry && ws.files[f].includes('provide input: Step'));
  if (edited) {
    const w = await watchEdits(dir, ws.entry, edited, ws.target, 20);
    const p = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))];
    const edit = w.rounds.map((r) => r.ms);
    console.log(
      `  mclc validate --watch: first check ${ms(w.firstMs)} (its compile ${ms(w.firstCompileMs)}, ${w.firstModules?.checked} modules); ` +
        `an edit of ${edited} checked again, from the write to the result: p50 ${ms(p(edit, 0.5))}, p95 ${ms(p(edit, 0.95))} over ${edit.length} edits ` +
        `(the compile p50 ${ms(p(w.rounds.map((r) => r.compileMs), 0.5))}: ${p(w.rounds.map((r) => r.checked), 0.5)} modules checked, ${p(w.rounds.map((r) => r.takenOver), 0.5)} taken over; ` +
        `${((p(edit, 0.5) / w.firstMs) * 100).toFixed(1)}% of the first check)`,
    );
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
