// A longer fuzz run than the property tests: mutates generated workspaces and
// random token soups, parses each case, and checks that the parser neither
// throws nor hangs and reports only positions inside the text and registered
// codes. Line edits (a member repeated, dropped or moved) keep many cases valid,
// so that valid input is exercised too.
//
//   npm run fuzz -- 20000          # number of cases (default 5000)
//   npm run fuzz -- 20000 1234     # ... from a given seed, to replay a failure

import { generateWorkspace } from './generate';
import { parse, syntaxDiagnosticInfos, walk } from '../src/index';

const cases = Number(process.argv[2] ?? 5000);
const firstSeed = Number(process.argv[3] ?? Date.now() % 1_000_000);
const codes = new Set(syntaxDiagnosticInfos.map((i) => i.code));

function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x100000000;
  };
}

const corpus = generateWorkspace({ components: 40, files: 4, seed: 7 }).files.filter((f) => f.path.endsWith('.mcl')).map((f) => f.text);
const pieces = ['{', '}', '(', ')', '[', ']', '<', '>', ',', ';', ':', '.', '..', '=', '->', '|', '*', '+', '?', '"', '"""', '/*', '*/', '//', '///',
  '\n', ' ', 'component', 'system', 'type', 'import', 'protocol', 'provide', 'require', 'expose', 'memory', 'on-failure', 'per', 'session',
  'connect', 'policy', 'only', 'from', 'no', 'path', 'exposed', 'budget', 'order', 'call', 'list', 'map', 'enum', 'union', 'x', 'A.b',
  '64KiB', '64KB', '5/s', '5/', '2s', '-1', '0x', '1e', '1.5', '99999999999999999999', '\u0000', '😀', '\ud800', 'é', '\\', "'", '#'];

function mutate(text: string, rnd: () => number): string {
  let t = text;
  const edits = 1 + Math.floor(rnd() * 8);
  for (let e = 0; e < edits; e++) {
    const i = Math.floor(rnd() * (t.length + 1));
    const len = 1 + Math.floor(rnd() * 60);
    const piece = pieces[Math.floor(rnd() * pieces.length)];
    switch (Math.floor(rnd() * 5)) {
      case 0: t = t.slice(0, i) + piece + t.slice(i); break;
      case 1: t = t.slice(0, i) + t.slice(i + len); break;
      case 2: t = t.slice(0, i) + piece + t.slice(i + len); break;
      case 3: t = t.slice(0, i) + t.slice(i, i + len) + t.slice(i); break;
      default: t = t.slice(0, i) + String.fromCharCode(Math.floor(rnd() * 0x3000)) + t.slice(i);
    }
  }
  return t;
}

function lineEdits(text: string, rnd: () => number): string {
  const lines = text.split('\n');
  const edits = 1 + Math.floor(rnd() * 4);
  for (let e = 0; e < edits; e++) {
    const i = Math.floor(rnd() * lines.length);
    const j = Math.floor(rnd() * lines.length);
    switch (Math.floor(rnd() * 3)) {
      case 0: lines.splice(i, 0, lines[j]); break;
      case 1: lines.splice(i, 1); break;
      default: [lines[i], lines[j]] = [lines[j], lines[i]];
    }
  }
  return lines.join('\n');
}

function soup(rnd: () => number): string {
  const n = Math.floor(rnd() * 400);
  let t = '';
  for (let i = 0; i < n; i++) t += pieces[Math.floor(rnd() * pieces.length)] + (rnd() < 0.5 ? ' ' : '');
  return t;
}

function deep(rnd: () => number): string {
  const n = 50 + Math.floor(rnd() * 5000);
  const [open, close] = [['[', ']'], ['{ a: ', '}'], ['list<', '>'], ['(', ')']][Math.floor(rnd() * 4)];
  const pre = ['target t { v ', 'type T = ', 'protocol P { order ', ''][Math.floor(rnd() * 4)];
  return pre + open.repeat(n) + (rnd() < 0.5 ? close.repeat(n) : '');
}

let failures = 0;
/** Cases without diagnostics. */
let valid = 0;
let bytes = 0;
let slowest = 0;
const started = performance.now();
for (let k = 0; k < cases; k++) {
  const seed = firstSeed + k;
  const rnd = prng(seed);
  const r = rnd();
  const base = corpus[Math.floor(rnd() * corpus.length)];
  const text = r < 0.5 ? mutate(base, rnd) : r < 0.75 ? lineEdits(base, rnd) : r < 0.9 ? soup(rnd) : deep(rnd);
  bytes += text.length;
  const t0 = performance.now();
  let problem: string | undefined;
  try {
    const { file, diagnostics } = parse(text, 'fuzz.mcl');
    if (diagnostics.length === 0) valid++;
    for (const d of diagnostics) {
      if (!codes.has(d.code)) problem ??= `unregistered code ${d.code}`;
      if (!(d.span.start >= 0 && d.span.start <= d.span.end && d.span.end <= text.length)) problem ??= `diagnostic outside the text: ${JSON.stringify(d)}`;
    }
    walk(file, (n) => {
      if (!(n.span.start >= 0 && n.span.start <= n.span.end && n.span.end <= text.length)) problem ??= `${n.kind} span ${JSON.stringify(n.span)}`;
    });
  } catch (e) {
    problem = `threw: ${e instanceof Error ? e.stack : String(e)}`;
  }
  const dt = performance.now() - t0;
  slowest = Math.max(slowest, dt);
  if (dt > 2000) problem ??= `took ${dt.toFixed(0)} ms`;
  if (problem) {
    failures++;
    console.log(`FAIL seed ${seed} (replay: npm run fuzz -- 1 ${seed}): ${problem}`);
    if (failures >= 10) break;
  }
}
const seconds = (performance.now() - started) / 1000;
console.log(
  `${cases} cases from seed ${firstSeed} in ${seconds.toFixed(1)} s: ${(cases / seconds).toFixed(0)} cases/s, ` +
    `${(bytes / 1e6 / seconds).toFixed(1)} MB/s, slowest case ${slowest.toFixed(1)} ms, ${valid} without diagnostics, ${failures} failures`,
);
process.exit(failures ? 1 : 0);
