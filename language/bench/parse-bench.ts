// Parse throughput on a generated workspace, compared with JSON.parse on a
// JSON document of the same byte size describing the same components.
//
//   node scripts/run-ts.mjs language/bench/parse-bench.ts [components] [files]

import { generateWorkspace } from './generate';
import { parse } from '../src/index';

const components = Number(process.argv[2] ?? 10_000);
const fileCount = Number(process.argv[3] ?? 100);
const ws = generateWorkspace({ components, files: fileCount });
// The texts as a file read from disk holds them (flat strings), as the compiler's
// benchmark and the CLI parse them, rather than as the generator built them.
const sources = ws.files
  .filter((f) => f.path.endsWith('.mcl'))
  .map((f) => ({ path: f.path, text: Buffer.from(f.text, 'utf8').toString('utf8') }));
const chars = sources.reduce((n, f) => n + f.text.length, 0);

/**
 * The best of `runs` runs, in CPU milliseconds of this process (user + system):
 * on a shared machine wall time mostly measures the other processes.
 */
function best(runs: number, fn: () => void): number {
  let min = Infinity;
  for (let r = 0; r < runs; r++) {
    const c0 = process.cpuUsage();
    fn();
    const c = process.cpuUsage(c0);
    min = Math.min(min, (c.user + c.system) / 1000);
  }
  return min;
}

const t0 = performance.now();
// Building the Chevrotain parser (grammar analysis) happens once per process, at the
// first file; an empty file forces it here.
parse('', 'warmup.mcl');
const construct = performance.now() - t0;
let diagnostics = 0;
const parseAll = () => {
  diagnostics = 0;
  for (const f of sources) diagnostics += parse(f.text, f.path).diagnostics.length;
};
const first = best(1, parseAll);
const parseMs = best(5, parseAll);
// The same kind of content as JSON: one object per component, as a configuration
// format would hold it, repeated until the document is as large as the sources.
const items: unknown[] = [];
let json = '[]';
for (let i = 0; json.length < ws.bytes; i++) {
  items.push({
    doc: `Stage ${i % 100} of chain ${Math.floor(i / 100)}.`,
    component: `C${Math.floor(i / 100)}_${i % 100}`,
    memory: '128MiB',
    vcpus: 1,
    label: 'internal',
    ports: [
      { direction: 'provide', name: 'api', protocol: `Chain${Math.floor(i / 100)}` },
      { direction: 'require', name: 'next', protocol: `Chain${Math.floor(i / 100)}` },
    ],
    params: [
      { name: 'limit', type: { kind: 'int', min: 1, max: 1000 + i }, default: i % 999 },
      { name: 'name', type: { kind: 'string', max: 64 }, default: `stage-${i}` },
    ],
    restart: { policy: 'on-failure', max: 3 },
    program: { script: 'guest/stage.sh' },
    connect: { to: `c${i + 1}.api`, rate: '100/s', max_message: '64KiB', timeout: '2s' },
  });
  if (items.length % 64 === 0) json = JSON.stringify(items);
}
json = JSON.stringify(items);
const jsonMs = best(5, () => JSON.parse(json));
const mb = ws.bytes / 1e6;

console.log(`workspace: ${components} components, ${sources.length} files, ${ws.lines} lines, ${mb.toFixed(2)} MB (${chars} chars)`);
console.log(`Chevrotain parser construction (grammar analysis, once per process): ${construct.toFixed(0)} ms`);
console.log(`parse (CPU time), first run: ${first.toFixed(0)} ms; best of 5: ${parseMs.toFixed(0)} ms = ${(mb / (parseMs / 1000)).toFixed(1)} MB/s, ${((ws.lines / parseMs) * 1000).toFixed(0)} lines/s`);
console.log(`JSON.parse of ${(json.length / 1e6).toFixed(2)} MB (CPU time): best of 5: ${jsonMs.toFixed(1)} ms = ${(json.length / 1e6 / (jsonMs / 1000)).toFixed(1)} MB/s`);
console.log(`parse throughput / JSON.parse throughput: ${(((mb / parseMs) / (json.length / 1e6 / jsonMs)) * 100).toFixed(1)}% (target >= 20%)`);
if (diagnostics) console.log(`unexpected: ${diagnostics} diagnostics`);
