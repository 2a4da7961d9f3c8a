// Golden files: every fixture's tree (*.ast.json) and syntax diagnostics
// (*.diagnostics.txt, in the one plain form of `formatDiagnostic`). Regenerate
// with UPDATE_GOLDEN=1 after an intended change.

import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from '../src/index';
import { hasInternalPlaceholder, renderDiagnostics } from './helpers';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const update = process.env.UPDATE_GOLDEN === '1';
const fixtures = readdirSync(dir).filter((f) => f.endsWith('.mcl')).sort();

function golden(file: string, actual: string): void {
  const path = join(dir, file);
  if (update || !existsSync(path)) {
    writeFileSync(path, actual);
    if (!update) throw new Error(`golden file ${file} was missing and has been written; check it and run again`);
    return;
  }
  expect(actual).toBe(readFileSync(path, 'utf8'));
}

describe('golden parse trees and diagnostics', () => {
  it('has fixtures of both kinds', () => {
    expect(fixtures.filter((f) => f.startsWith('error_')).length).toBeGreaterThanOrEqual(5);
    expect(fixtures.filter((f) => !f.startsWith('error_')).length).toBeGreaterThanOrEqual(2);
  });

  for (const f of fixtures) {
    it(f, () => {
      const text = readFileSync(join(dir, f), 'utf8');
      const { file, diagnostics } = parse(text, `fixtures/${f}`);
      expect(hasInternalPlaceholder(file)).toBe(false);
      golden(f.replace(/\.mcl$/, '.ast.json'), JSON.stringify(file, null, 2) + '\n');
      if (f.startsWith('error_')) {
        expect(diagnostics.length).toBeGreaterThan(0);
        golden(f.replace(/\.mcl$/, '.diagnostics.txt'), renderDiagnostics(text, diagnostics) + '\n');
      } else {
        expect(renderDiagnostics(text, diagnostics)).toBe('');
      }
    });
  }
});
