// Golden files: the plan of every example (examples/<name>/<name>.plan.json,
// with guest program texts replaced by stand-ins)
// and the diagnostics of every broken example
// (examples/broken/<case>.diagnostics.txt). Regenerate with UPDATE_GOLDEN=1.

import { describe, expect, test } from 'vitest';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prettyJson, validatePlan } from '@mcl/plan';
import { compile } from '../src/index';
import { MemoryHost, readTree, renderDiagnostics, REPO } from './helpers';

const UPDATE = process.env.UPDATE_GOLDEN === '1';
const EXAMPLES = join(REPO, 'examples');

function golden(path: string, actual: string): void {
  if (UPDATE || !existsSync(path)) {
    if (!UPDATE) throw new Error(`missing golden file ${path}; run with UPDATE_GOLDEN=1 to create it`);
    writeFileSync(path, actual);
    return;
  }
  expect(actual).toBe(readFileSync(path, 'utf8'));
}

const examples = readdirSync(EXAMPLES).filter((n) => n !== 'broken' && existsSync(join(EXAMPLES, n, `${n}.mcl`))).sort();

describe('example plans', () => {
  for (const name of examples) {
    // Guest programs change independently of the compiler; the golden plan pins each one to a fixed
    // stand-in text so that editing a guest script does not invalidate it (the plan is otherwise real).
    const files = Object.fromEntries(
      Object.entries(readTree(join(EXAMPLES, name))).map(([p, t]) => [p, p.startsWith('guest/') ? `# stand-in for ${p}\n` : t]),
    );
    // Guest programs are written separately from the .mcl files; until an example has them it cannot be planned.
    const guestMissing = Object.keys(files).filter((f) => f.endsWith('.mcl')).some((f) =>
      [...files[f].matchAll(/script\s+"([^"]+)"/g)].some((m) => !(m[1] in files)),
    );
    test.skipIf(guestMissing)(`${name} plans without diagnostics and matches its golden plan`, () => {
      const r = compile(new MemoryHost(files), { entries: [`${name}.mcl`], mclcVersion: '0.1.0' });
      expect(renderDiagnostics(r)).toBe('');
      expect(r.plan).toBeDefined();
      const v = validatePlan(JSON.parse(JSON.stringify(r.plan)));
      expect(v.errors).toEqual([]);
      golden(join(EXAMPLES, name, `${name}.plan.json`), prettyJson(r.plan));
    });
  }
});

describe('broken examples', () => {
  const dir = join(EXAMPLES, 'broken');
  const files = readTree(dir);
  for (const f of Object.keys(files).filter((x) => x.endsWith('.mcl')).sort()) {
    test(`${f} diagnostics`, () => {
      const r = compile(new MemoryHost(files), { entries: [f], mclcVersion: '0.1.0' });
      const text = renderDiagnostics(r);
      expect(r.diagnostics.some((d) => d.severity === 'error')).toBe(true);
      expect(r.plan).toBeUndefined();
      golden(join(dir, f.replace(/\.mcl$/, '.diagnostics.txt')), text);
    });
  }
});
