// A fuzzer over the `mclc` binary: random and mutated sources, long lines,
// binary files, mutated plan files and odd paths (directory link loops, links
// out of the workspace, FIFOs, devices, dangling links, directories and names
// that look like options), each run as a real process with a deadline.
//
// Every case must end within the deadline with an exit code documented in
// spec/cli.md (never 70, the internal error), without a stack trace, and with
// bounded output. Lifecycle commands (apply, destroy, status, logs) are not
// fuzzed here: they start or talk to a deployment.
//
// Used briefly by cli-fuzz.test.ts and at length by `npm run fuzz:cli -- N [SEED]`.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface FuzzCase {
  seed: number;
  /** What kind of input this is, for the report. */
  kind: string;
  /** The command line after `mclc`, run in the case's workspace. */
  args: string[];
  /** Bytes of input written, for the output bound. */
  inputBytes: number;
}

export interface FuzzOutcome {
  c: FuzzCase;
  code: number | null;
  ms: number;
  outBytes: number;
  problem?: string;
}

export interface FuzzOptions {
  /** The bundled CLI (cli/dist/mclc.mjs). */
  bundle: string;
  /** Repository root: the corpus is read from its examples and fixtures. */
  repo: string;
  /** A case running longer than this is a hang. */
  timeoutMs: number;
  /** Exit codes spec/cli.md documents. */
  documented: ReadonlySet<number>;
}

/** The exit codes of the table in spec/cli.md's "Exit codes" section: the fuzzer's definition of "documented". */
export function documentedExitCodes(repo: string): Set<number> {
  const text = readFileSync(join(repo, 'spec/cli.md'), 'utf8');
  const section = text.slice(text.indexOf('## Exit codes'), text.indexOf('\n## ', text.indexOf('## Exit codes') + 5));
  const codes = new Set<number>();
  for (const m of section.matchAll(/^\| (\d+) \|/gm)) codes.add(Number(m[1]));
  return codes;
}

export function prng(seed: number): () => number {
  // Mix the seed first (the finaliser of MurmurHash3), so that neighbouring seeds start far apart.
  let s = Math.imul((seed ^ 0x9e3779b9) >>> 0, 0x85ebca6b);
  s ^= s >>> 13;
  s = Math.imul(s, 0xc2b2ae35);
  s ^= s >>> 16;
  s = s >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x100000000;
  };
}

/** Sources and plans to mutate: the examples, the broken examples and the CLI's fixtures. */
export function loadCorpus(repo: string): { sources: string[]; plans: string[] } {
  const sources: string[] = [];
  const plans: string[] = [];
  const visit = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) visit(p);
      else if (e.name.endsWith('.mcl')) sources.push(readFileSync(p, 'utf8'));
      else if (e.name.endsWith('.plan.json')) plans.push(readFileSync(p, 'utf8'));
    }
  };
  for (const d of ['examples', 'cli/test/fixtures']) if (existsSync(join(repo, d))) visit(join(repo, d));
  return { sources, plans };
}

const PIECES = ['{', '}', '(', ')', '[', ']', '<', '>', ',', ':', '.', '=', '->', '|', '*', '"', '/*', '//', '\n', ' ', 'component', 'system',
  'import', 'protocol', 'provide', 'require', 'expose', 'connect', 'policy', 'only', 'from', 'deploy', 'target', 'memory 64MiB', 'replicas 3',
  'program { script "a.sh" }', 'label secret', 'x', 'A.b', '64KiB', '5/s', '2s', '-1', '99999999999999999999', '\u0000', '😀', '\ud800', 'é', '\\', '`'];

const pick = <T>(rnd: () => number, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];

function mutate(text: string, rnd: () => number): string {
  let t = text;
  const edits = 1 + Math.floor(rnd() * 8);
  for (let e = 0; e < edits; e++) {
    const i = Math.floor(rnd() * (t.length + 1));
    const len = 1 + Math.floor(rnd() * 80);
    switch (Math.floor(rnd() * 5)) {
      case 0: t = t.slice(0, i) + pick(rnd, PIECES) + t.slice(i); break;
      case 1: t = t.slice(0, i) + t.slice(i + len); break;
      case 2: t = t.slice(0, i) + t.slice(i, i + len).repeat(1 + Math.floor(rnd() * 20)) + t.slice(i + len); break;
      case 3: t = t.slice(0, i) + String.fromCharCode(Math.floor(rnd() * 0x3000)) + t.slice(i); break;
      default: t = t.slice(0, i) + pick(rnd, PIECES) + t.slice(i + len);
    }
  }
  return t;
}

/** One very long line: a declaration or junk repeated, with or without newlines elsewhere. */
function longLine(rnd: () => number, base: string): string {
  const unit = pick(rnd, ['component B { memory 1MiB } ', 'x ', 'A'.repeat(50), '😀', 'connect a.b -> c.d ', '{', '"', pick(rnd, PIECES) + ' ']);
  const n = Math.floor((20_000 + rnd() * 300_000) / unit.length);
  const line = unit.repeat(n);
  return rnd() < 0.5 ? line : base + '\n' + line + '\n';
}

function randomBytes(rnd: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
  return b;
}

function mutatePlan(text: string, rnd: () => number): string {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return mutate(text, rnd);
  }
  const values = [null, 0, -1, 1e308, '', 'x'.repeat(1000), [], {}, true, '../../etc/passwd', { format_version: '9.0' }];
  const edits = 1 + Math.floor(rnd() * 4);
  for (let e = 0; e < edits; e++) {
    // Walk to a random node and replace, delete or duplicate something in it.
    let node = doc as Record<string, unknown>;
    for (let d = 0; d < 4 && node && typeof node === 'object'; d++) {
      const keys = Object.keys(node);
      if (!keys.length) break;
      const k = pick(rnd, keys);
      if (rnd() < 0.4 || typeof node[k] !== 'object' || node[k] === null) {
        const r = rnd();
        if (r < 0.6) node[k] = pick(rnd, values);
        else if (r < 0.8) delete node[k];
        else if (Array.isArray(node)) (node as unknown[]).push(...(node as unknown[]));
        else node[`${k}_extra`] = node[k];
        break;
      }
      node = node[k] as Record<string, unknown>;
    }
  }
  const out = JSON.stringify(doc, null, rnd() < 0.5 ? 2 : undefined);
  return rnd() < 0.2 ? mutate(out, rnd) : out;
}

/** A file outside the workspace that links point to: no command may change it. */
const OUTSIDE_TEXT = 'component   X {\n memory 64MiB\n}\n';

const SOURCE_COMMANDS: string[][] = [
  ['validate'],
  ['validate', '--json'],
  ['validate', '--format', 'sarif'],
  ['plan'],
  ['plan', '--json'],
  ['plan', '--out', 'out.plan'],
  ['plan', '--detailed-exitcode'],
  ['graph'],
  ['fmt', '--check'],
  ['fmt'],
];

/**
 * Builds case `seed` in the empty directory `dir` (the workspace; `dir/../outside-SEED`
 * is a directory outside it that links may point to) and returns its command line.
 */
export function makeCase(seed: number, dir: string, corpus: { sources: string[]; plans: string[] }): FuzzCase {
  const rnd = prng(seed);
  const outside = `${dir}-outside`;
  mkdirSync(outside, { recursive: true });
  let bytes = 0;
  const write = (p: string, data: string | Buffer) => {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), data);
    bytes += Buffer.byteLength(data);
  };
  const base = pick(rnd, corpus.sources);
  const r = rnd();
  let kind: string;
  if (r < 0.35) {
    kind = 'mutated source';
    write('main.mcl', mutate(base, rnd));
    if (rnd() < 0.5) write('lib/more.mcl', mutate(pick(rnd, corpus.sources), rnd));
  } else if (r < 0.45) {
    kind = 'valid source';
    write('main.mcl', base);
  } else if (r < 0.6) {
    kind = 'long line';
    write('main.mcl', longLine(rnd, base));
  } else if (r < 0.68) {
    kind = 'binary file';
    write('main.mcl', randomBytes(rnd, Math.floor(rnd() * 200_000)));
  } else if (r < 0.82) {
    kind = 'odd paths';
    write('d/main.mcl', base);
    write('d/a.sh', 'true\n');
    const odd = Math.floor(rnd() * 9);
    const at = (p: string) => join(dir, p);
    mkdirSync(at('d/e'), { recursive: true });
    writeFileSync(join(outside, 'x.mcl'), OUTSIDE_TEXT);
    if (odd === 0) symlinkSync('..', at('d/loop'));
    if (odd === 1) symlinkSync('/', at('d/e/root'));
    if (odd === 2) symlinkSync(join(outside, 'x.mcl'), at('d/x.mcl'));
    if (odd === 3) execFileSync('mkfifo', [at('d/pipe.mcl')]);
    if (odd === 4) symlinkSync('nowhere.mcl', at('d/dangling.mcl'));
    if (odd === 5) symlinkSync('/dev/zero', at('d/zero.mcl'));
    if (odd === 6) mkdirSync(at('d/dir.mcl'));
    if (odd === 7) write('d/-rf.mcl', 'type T = int\n');
    if (odd === 8) write('d/sp ace\nnew line é.mcl', 'type T = int\n');
    if (rnd() < 0.3) symlinkSync('main.mcl', at('d/again.mcl'));
  } else {
    kind = 'plan file';
    const p = pick(rnd, ['mutated', 'bytes', 'fifo', 'device', 'empty', 'directory']);
    if (p === 'mutated') write('x.plan', mutatePlan(corpus.plans.length ? pick(rnd, corpus.plans) : base, rnd));
    else if (p === 'bytes') write('x.plan', randomBytes(rnd, Math.floor(rnd() * 50_000)));
    else if (p === 'fifo') execFileSync('mkfifo', [join(dir, 'x.plan')]);
    else if (p === 'device') symlinkSync('/dev/zero', join(dir, 'x.plan'));
    else if (p === 'empty') write('x.plan', '');
    else mkdirSync(join(dir, 'x.plan'));
    kind += ` (${p})`;
    return { seed, kind, args: rnd() < 0.5 ? ['show', 'x.plan'] : ['show', 'x.plan', '--json'], inputBytes: bytes };
  }
  if (!existsSync(join(dir, 'a.sh'))) write('a.sh', 'true\n');
  const cmd = [...pick(rnd, SOURCE_COMMANDS)];
  const target = kind === 'odd paths' ? (rnd() < 0.7 ? 'd' : '.') : rnd() < 0.7 ? '.' : 'main.mcl';
  // A state file that is itself odd, sometimes.
  if (cmd[0] === 'plan' && rnd() < 0.2) {
    const s = pick(rnd, ['fifo', 'garbage', 'device']);
    mkdirSync(join(dir, '.mcl'), { recursive: true });
    if (s === 'fifo') execFileSync('mkfifo', [join(dir, '.mcl/state.json')]);
    else if (s === 'device') symlinkSync('/dev/zero', join(dir, '.mcl/state.json'));
    else writeFileSync(join(dir, '.mcl/state.json'), randomBytes(rnd, 1000));
    kind += ` + ${s} state`;
  }
  return { seed, kind, args: [...cmd, target], inputBytes: bytes };
}

/** The exit codes each fuzzed command may give (spec/cli.md, per command). */
const COMMAND_CODES: Record<string, number[]> = { validate: [0, 1, 3], plan: [0, 1, 2, 3], graph: [0, 1, 3], fmt: [0, 1, 4], show: [0, 1] };

/** Output beyond this is unbounded: the diagnostic limits keep text, JSON and SARIF far below it. */
export function outputBound(c: FuzzCase): number {
  return 4 * 1024 * 1024 + 2 * c.inputBytes;
}

export async function runCase(c: FuzzCase, dir: string, opts: FuzzOptions): Promise<FuzzOutcome> {
  const started = performance.now();
  const bound = outputBound(c);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [opts.bundle, ...c.args], {
      cwd: dir,
      env: { ...process.env, NO_COLOR: '1', CI: '1', FORCE_COLOR: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let outBytes = 0;
    let head = '';
    let overflow = false;
    const take = (b: Buffer) => {
      outBytes += b.length;
      if (head.length < 20_000) head += b.toString('utf8', 0, Math.min(b.length, 20_000));
      if (outBytes > bound && !overflow) {
        overflow = true;
        child.kill('SIGKILL');
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      const ms = performance.now() - started;
      let problem: string | undefined;
      if (timedOut) problem = `no exit after ${opts.timeoutMs} ms`;
      else if (overflow) problem = `more than ${bound} bytes of output`;
      else if (code === null) problem = 'killed by a signal';
      else if (code === 70) problem = 'exit 70 (internal error)';
      else if (!opts.documented.has(code)) problem = `exit ${code} is not documented in spec/cli.md`;
      else if (!(COMMAND_CODES[c.args[0]] ?? [...opts.documented]).includes(code)) problem = `exit ${code} is not one ${c.args[0]} documents`;
      else if (/internal error|\n\s+at .+:\d+:\d+\)?\n/.test(head)) problem = 'an internal error or a stack trace in the output';
      if (problem) problem += `\n${head.slice(0, 1500)}`;
      resolve({ c, code, ms, outBytes, problem });
    });
  });
}

export interface FuzzSummary {
  cases: number;
  failures: FuzzOutcome[];
  byKind: Map<string, number>;
  byCode: Map<number | null, number>;
  slowestMs: number;
  maxOutBytes: number;
  seconds: number;
  /** Cases that ran out of time once and were run again. */
  retried: number;
}

/**
 * Runs `count` cases from `firstSeed`, `parallel` at a time, each in a fresh
 * directory under a temporary root that is removed afterwards. Stops early
 * once `deadlineMs` (from the start) has passed, or after 10 failures.
 */
export async function fuzz(count: number, firstSeed: number, opts: FuzzOptions & { parallel?: number; deadlineMs?: number; onOutcome?: (o: FuzzOutcome) => void }): Promise<FuzzSummary> {
  const root = mkdtempSync(join(tmpdir(), 'mclc-fuzz-'));
  const corpus = loadCorpus(opts.repo);
  const started = performance.now();
  const summary: FuzzSummary = { cases: 0, failures: [], byKind: new Map(), byCode: new Map(), slowestMs: 0, maxOutBytes: 0, seconds: 0, retried: 0 };
  let next = 0;
  const worker = async () => {
    while (next < count && summary.failures.length < 10 && (opts.deadlineMs === undefined || performance.now() - started < opts.deadlineMs)) {
      const seed = firstSeed + next++;
      const dir = join(root, `c${seed}`);
      mkdirSync(dir);
      let o: FuzzOutcome;
      try {
        const c = makeCase(seed, dir, corpus);
        o = await runCase(c, dir, opts);
        // On a loaded machine a slow case is not a hang: one that ran out of time runs once more, and fails only if it does again.
        if (o.problem?.startsWith('no exit after')) {
          summary.retried++;
          o = await runCase(c, dir, opts);
        }
        const outsideFile = join(`${dir}-outside`, 'x.mcl');
        if (!o.problem && existsSync(outsideFile) && readFileSync(outsideFile, 'utf8') !== OUTSIDE_TEXT) o.problem = 'a file outside the workspace was changed';
      } catch (e) {
        o = { c: { seed, kind: 'setup', args: [], inputBytes: 0 }, code: null, ms: 0, outBytes: 0, problem: `setting up the case failed: ${(e as Error).stack}` };
      }
      summary.cases++;
      const kind = o.c.kind.replace(/ \(.*\)| \+ .*/, '');
      summary.byKind.set(kind, (summary.byKind.get(kind) ?? 0) + 1);
      summary.byCode.set(o.code, (summary.byCode.get(o.code) ?? 0) + 1);
      summary.slowestMs = Math.max(summary.slowestMs, o.ms);
      summary.maxOutBytes = Math.max(summary.maxOutBytes, o.outBytes);
      if (o.problem) summary.failures.push(o);
      opts.onOutcome?.(o);
      rmSync(dir, { recursive: true, force: true });
      rmSync(`${dir}-outside`, { recursive: true, force: true });
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.parallel ?? 2 }, worker));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}

export function describeFailure(o: FuzzOutcome): string {
  return `seed ${o.c.seed} (${o.c.kind}): mclc ${o.c.args.map((a) => JSON.stringify(a)).join(' ')}: ${o.problem}`;
}
