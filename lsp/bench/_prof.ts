import { compile } from '@mcl/compiler';
import { NodeHost } from '@mcl/compiler/node-host';
import { DocumentCache } from '../src/analysis';
import { readdirSync } from 'node:fs';
const root = process.argv[2];
const host = new NodeHost(root, '/work/main/stdlib');
const entries = ['main.mcl', ...readdirSync(root + '/mods').map((f) => 'mods/' + f)];
const cache = new DocumentCache();
for (let i = 0; i < 30; i++) {
  const t = performance.now();
  const r = compile(host, { entries, mclcVersion: 'x', emitPlan: false, cache });
  console.log(i, (performance.now() - t).toFixed(1), 'ms', r.diagnostics.length, 'diags', r.program.references.length, 'refs');
  if (i === 0) console.log(r.diagnostics.slice(0, 5).map((d) => `${d.file} ${d.code} ${d.message}`));
}
