import type { Diagnostic, DiagnosticInfo } from '@mcl/language';
import { describe, expect, it } from 'vitest';
import { renderDiagnostic, renderDiagnostics } from '../src/render/codeframe';
import { diagnosticsDocument } from '../src/render/json';
import { sarifDocument } from '../src/render/sarif';
import { styler } from '../src/io';
import { expectGolden } from './golden';

const shop = [
  'import std.kv.{Kv}',
  '',
  'component App {',
  '\trequire db: Kv',
  '  param name: string = "café ☕"',
  '}',
  '',
  'system Shop {',
  '  app: App',
  '}',
  '',
].join('\n');
const texts = new Map([
  ['shop.mcl', shop],
  ['std:kv', 'protocol Kv {\n  call get(Key) -> Value\n}\n'],
]);
const at = (file: string, needle: string, len = needle.length) => {
  const start = texts.get(file)!.indexOf(needle);
  if (start < 0) throw new Error(needle);
  return { start, end: start + len };
};

const diagnostics: Diagnostic[] = [
  {
    code: 'MCL0402',
    severity: 'error',
    message: 'The required port `db` of `app` is not connected.',
    file: 'shop.mcl',
    span: at('shop.mcl', 'db'),
    hint: 'Connect it in `Shop`, e.g. `connect app.db -> store.kv`.',
    related: [
      { file: 'std:kv', span: at('std:kv', 'Kv'), message: 'the protocol is declared here' },
      { file: 'shop.mcl', span: at('shop.mcl', 'app: App'), message: 'the instance is declared here' },
    ],
  },
  {
    code: 'MCL0312',
    severity: 'warning',
    message: 'The default value is longer than needed.',
    file: 'shop.mcl',
    span: at('shop.mcl', '"café ☕"'),
  },
  {
    code: 'MCL0504',
    severity: 'error',
    message: 'The system spans lines.',
    file: 'shop.mcl',
    span: at('shop.mcl', 'system Shop {\n  app: App\n}'),
    fixes: [{ title: 'Remove it', edits: [{ file: 'shop.mcl', span: at('shop.mcl', 'system'), newText: '' }] }],
  },
  { code: 'MCL0101', severity: 'error', message: 'Unexpected end of file.', file: 'shop.mcl', span: { start: shop.length, end: shop.length } },
];

const rules: DiagnosticInfo[] = [
  { code: 'MCL0101', stage: 'syntax', severity: 'error', title: 'Unexpected token' },
  { code: 'MCL0402', stage: 'compose', severity: 'error', title: 'Required port not connected' },
  { code: 'MCL0504', stage: 'policy', severity: 'error', title: 'Reachability violated' },
];

describe('code frames', () => {
  it('renders location, code, source, caret, hint and related frames', () => {
    expectGolden('codeframe.txt', renderDiagnostics(diagnostics, { texts, fileCount: 1 }));
  });

  it('lines the caret up under a tab and under non-ASCII text', () => {
    const out = renderDiagnostic(diagnostics[0], { texts });
    const lines = out.split('\n');
    expect(lines[1]).toBe('  4 |     require db: Kv');
    expect(lines[2]).toBe('    |             ^^');
    const w = renderDiagnostic(diagnostics[1], { texts }).split('\n');
    expect(w[0]).toBe('shop.mcl:5:24: warning MCL0312: The default value is longer than needed.');
    expect(w[2]).toBe('    |' + ' '.repeat(24) + '^'.repeat(8));
  });

  it('colours only when asked', () => {
    expect(renderDiagnostic(diagnostics[0], { texts })).not.toContain('\x1b[');
    expect(renderDiagnostic(diagnostics[0], { texts, style: styler(true) })).toContain('\x1b[31m');
  });

  it('prints a header alone for a file it has no text of', () => {
    const d: Diagnostic = { code: 'MCL0211', severity: 'error', message: 'Entry file not found.', file: 'gone.mcl', span: { start: 0, end: 0 } };
    expect(renderDiagnostic(d, { texts })).toBe('gone.mcl: error MCL0211: Entry file not found.');
  });

  it('counts problems', () => {
    expect(renderDiagnostics([], { texts, fileCount: 2 })).toBe('No problems found in 2 files.\n');
  });
});

describe('JSON diagnostics', () => {
  it('matches the golden document', () => {
    const doc = diagnosticsDocument(diagnostics, { texts });
    expect(doc.valid).toBe(false);
    expect(doc.error_count).toBe(3);
    expect(doc.warning_count).toBe(1);
    expectGolden('diagnostics.json', JSON.stringify(doc, null, 2) + '\n');
  });

  it('gives byte offsets in UTF-8', () => {
    const doc = diagnosticsDocument([diagnostics[1]], { texts });
    const r = doc.diagnostics[0].range!;
    const bytes = Buffer.from(shop, 'utf8');
    expect(bytes.subarray(r.start.byte, r.end.byte).toString('utf8')).toBe('"café ☕"');
    const snip = doc.diagnostics[0].snippet!;
    expect(Buffer.from(snip.code).subarray(snip.highlight_start_offset, snip.highlight_end_offset).toString()).toBe('"café ☕"');
  });
});

describe('SARIF', () => {
  const sarif = sarifDocument(diagnostics, {
    texts,
    artifactPath: (f) => (f.startsWith('std:') ? `stdlib/${f.slice(4)}.mcl` : `examples/shop/${f}`),
    rules,
    toolVersion: '0.1.0',
  }) as any;

  it('matches the golden document', () => {
    expectGolden('diagnostics.sarif', JSON.stringify(sarif, null, 2) + '\n');
  });

  it('has the fields SARIF 2.1.0 requires and stable rule ids', () => {
    expect(sarif.version).toBe('2.1.0');
    const run = sarif.runs[0];
    expect(run.tool.driver.name).toBe('mclc');
    const ruleIds = run.tool.driver.rules.map((r: any) => r.id);
    expect(ruleIds).toEqual(['MCL0101', 'MCL0312', 'MCL0402', 'MCL0504']);
    for (const r of run.results) {
      expect(r.message.text).toBeTruthy();
      expect(run.tool.driver.rules[r.ruleIndex].id).toBe(r.ruleId);
      const loc = r.locations[0].physicalLocation;
      expect(loc.artifactLocation.uri).toMatch(/^examples\/shop\/shop\.mcl$/);
      expect(loc.region.startLine).toBeGreaterThan(0);
      expect(r.partialFingerprints['mclDiagnostic/v1']).toMatch(/^[0-9a-f]{32}$/);
    }
    expect(run.results[0].relatedLocations[0].physicalLocation.artifactLocation.uri).toBe('stdlib/kv.mcl');
  });

  it('keeps fingerprints when lines move', () => {
    const moved = new Map(texts);
    moved.set('shop.mcl', '// a new first line\n' + shop);
    const d = { ...diagnostics[0], span: { start: diagnostics[0].span.start + 20, end: diagnostics[0].span.end + 20 }, related: [] };
    const again = sarifDocument([d], { texts: moved, artifactPath: (f) => f, rules, toolVersion: '0.1.0' }) as any;
    const first = sarifDocument([{ ...diagnostics[0], related: [] }], { texts, artifactPath: (f) => f, rules, toolVersion: '0.1.0' }) as any;
    expect(again.runs[0].results[0].partialFingerprints).toEqual(first.runs[0].results[0].partialFingerprints);
    expect(again.runs[0].results[0].locations[0].physicalLocation.region.startLine).toBe(5);
  });
});
