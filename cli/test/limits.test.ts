// The bounds of render/limits.ts: a long line is shown as a window around the
// span, at most 10 diagnostics per line and 200 in total are rendered (the
// rest summarised, in text, JSON and SARIF alike), long quoted names in
// messages are cut, and related locations are capped.

import type { Diagnostic } from '@mcl/language';
import { describe, expect, it } from 'vitest';
import { renderDiagnostics } from '../src/render/codeframe';
import { diagnosticsDocument } from '../src/render/json';
import { clipLine, clipMessage, LINE_WINDOW, MAX_DIAGNOSTICS, MAX_PER_LINE, MAX_RELATED } from '../src/render/limits';
import { sarifDocument } from '../src/render/sarif';

/** One line of `n` repeated declarations, each flagged: the shape of a minified or generated file. */
function longLine(n: number) {
  const decl = 'component B { memory 1MiB } ';
  const text = 'component A { memory 64MiB }\n' + decl.repeat(n) + '\n';
  const base = text.indexOf('\n') + 1;
  const diagnostics: Diagnostic[] = [];
  for (let i = 0; i < n; i++) {
    const start = base + i * decl.length + decl.indexOf('1MiB');
    diagnostics.push({ code: 'MCL0412', severity: 'error', message: 'memory must be at least 16MiB, not 1MiB', file: 'big.mcl', span: { start, end: start + 4 }, hint: 'write e.g. `128MiB`' });
  }
  return { texts: new Map([['big.mcl', text]]), diagnostics, text };
}

/** `n` diagnostics on `n` lines of their own. */
function manyLines(n: number, severity: (i: number) => Diagnostic['severity'] = () => 'error') {
  const text = 'x = 1\n'.repeat(n);
  const diagnostics: Diagnostic[] = [];
  for (let i = 0; i < n; i++) diagnostics.push({ code: 'MCL0101', severity: severity(i), message: `problem ${i}`, file: 'many.mcl', span: { start: i * 6, end: i * 6 + 1 } });
  return { texts: new Map([['many.mcl', text]]), diagnostics };
}

describe('clipLine', () => {
  it('leaves lines up to the limit whole', () => {
    expect(clipLine('component A {}', 10, 11)).toEqual({ text: 'component A {}', from: 10, to: 11 });
  });

  it('cuts a long line to a window around the span, marked with ellipses', () => {
    const line = 'a'.repeat(5000) + 'TARGET' + 'b'.repeat(5000);
    const c = clipLine(line, 5000, 5006);
    expect(c.text.length).toBeLessThanOrEqual(LINE_WINDOW + 2);
    expect(c.text.startsWith('…') && c.text.endsWith('…')).toBe(true);
    expect(c.text.slice(c.from, c.to)).toBe('TARGET');
  });

  it('runs a highlight longer than the window on over the ellipsis', () => {
    const c = clipLine('x'.repeat(10_000), 0, 10_000);
    expect(c.from).toBe(0);
    expect(c.to).toBe(c.text.length);
    expect(c.text.endsWith('…')).toBe(true);
  });

  it('never cuts a surrogate pair', () => {
    const line = '😀'.repeat(3000);
    for (const at of [0, 1, 101, 2999, 4001, 5999]) {
      const c = clipLine(line, at, at + 2);
      const inner = c.text.replace(/^…|…$/g, '');
      expect(inner).toBe('😀'.repeat(inner.length / 2));
    }
  });
});

describe('clipMessage', () => {
  it('cuts a long quoted name and keeps short messages as they are', () => {
    expect(clipMessage('unknown protocol `Kv`')).toBe('unknown protocol `Kv`');
    const m = clipMessage(`unknown protocol \`${'Q'.repeat(100_000)}\``);
    expect(m.length).toBeLessThan(200);
    expect(m).toMatch(/^unknown protocol `Q+…`$/);
  });

  it('bounds a long message without quotes', () => {
    expect(clipMessage('w '.repeat(100_000)).length).toBeLessThanOrEqual(2001);
  });
});

describe('diagnostics on one long line', () => {
  // 4,000 mistakes on a 116 KB line printed the line 4,000 times: 450 MB of `validate --json`.
  const { texts, diagnostics } = longLine(4000);

  it('text: shows 10 clipped frames, then says how many were left out, and counts them all', () => {
    const out = renderDiagnostics(diagnostics, { texts, fileCount: 1 });
    expect(out.length).toBeLessThan(20_000);
    expect(out.match(/error MCL0412/g)).toHaveLength(MAX_PER_LINE);
    expect(out).toContain(`... and ${4000 - MAX_PER_LINE} more diagnostics not shown (${4000 - MAX_PER_LINE} errors)`);
    expect(out).toContain('pass --max-diagnostics 0 to show them all');
    expect(out.trimEnd().endsWith('Found 4000 errors in 1 file.')).toBe(true);
    // Every frame line is a window of the source line, and the caret is under the span.
    const lines = out.split('\n');
    const i = lines.findIndex((l) => l.startsWith('  2 | '));
    expect(lines[i].length).toBeLessThan(LINE_WINDOW + 20);
    const caret = lines[i + 1].indexOf('^');
    expect(lines[i].slice(caret, caret + 4)).toBe('1MiB');
  });

  it('JSON: the same limits, with `omitted`, and snippets whose highlight is the span', () => {
    const doc = diagnosticsDocument(diagnostics, { texts });
    expect(JSON.stringify(doc).length).toBeLessThan(20_000);
    expect(doc).toMatchObject({ format_version: '1.1', error_count: 4000, valid: false });
    expect(doc.diagnostics).toHaveLength(MAX_PER_LINE);
    expect(doc.omitted).toMatchObject({ count: 4000 - MAX_PER_LINE, error_count: 4000 - MAX_PER_LINE, warning_count: 0 });
    for (const d of doc.diagnostics) {
      const bytes = Buffer.from(d.snippet!.code);
      expect(bytes.subarray(d.snippet!.highlight_start_offset, d.snippet!.highlight_end_offset).toString()).toBe('1MiB');
      expect(d.snippet!.code.length).toBeLessThanOrEqual(LINE_WINDOW + 2);
    }
  });

  it('SARIF: the same limits, said in a notification of the run', () => {
    const doc = sarifDocument(diagnostics, { texts, artifactPath: (f) => f, rules: [], toolVersion: '0' }) as any;
    expect(JSON.stringify(doc).length).toBeLessThan(40_000);
    const run = doc.runs[0];
    expect(run.results).toHaveLength(MAX_PER_LINE);
    expect(run.properties.omittedResults).toBe(4000 - MAX_PER_LINE);
    expect(run.invocations[0].toolExecutionNotifications[0].message.text).toContain(`${4000 - MAX_PER_LINE} more diagnostics not shown`);
    expect(run.results[0].locations[0].physicalLocation.region.snippet.text.length).toBeLessThanOrEqual(LINE_WINDOW + 2);
  });

  it('--max-diagnostics 0 shows every diagnostic, each still clipped', () => {
    const doc = diagnosticsDocument(diagnostics, { texts, maxDiagnostics: 0 });
    expect(doc.diagnostics).toHaveLength(4000);
    expect(doc.omitted).toBeNull();
    expect(JSON.stringify(doc).length).toBeLessThan(4000 * 1500);
  });
});

describe('the total limit', () => {
  it('shows 200 diagnostics, errors first, in source order', () => {
    const { texts, diagnostics } = manyLines(500, (i) => (i % 2 ? 'error' : 'warning'));
    const doc = diagnosticsDocument(diagnostics, { texts });
    expect(doc.diagnostics).toHaveLength(MAX_DIAGNOSTICS);
    expect(doc.diagnostics.every((d) => d.severity === 'error')).toBe(true);
    expect(doc.diagnostics[0].summary).toBe('problem 1');
    expect(doc.omitted).toMatchObject({ count: 300, error_count: 50, warning_count: 250 });
    expect(doc.error_count).toBe(250);
    expect(doc.warning_count).toBe(250);
  });

  it('takes another limit from the caller', () => {
    const { texts, diagnostics } = manyLines(30);
    const out = renderDiagnostics(diagnostics, { texts, maxDiagnostics: 5 });
    expect(out.match(/error MCL0101/g)).toHaveLength(5);
    expect(out).toContain('... and 25 more diagnostics not shown (25 errors): at most 10 are shown per line and 5 in total');
  });

  it('prints nothing more when everything is shown', () => {
    const { texts, diagnostics } = manyLines(3);
    expect(renderDiagnostics(diagnostics, { texts })).not.toContain('not shown');
    expect(diagnosticsDocument(diagnostics, { texts }).omitted).toBeNull();
  });
});

describe('related locations', () => {
  it('shows at most 20 per diagnostic and says how many more there are', () => {
    const { texts, diagnostics } = manyLines(100);
    const d: Diagnostic = { ...diagnostics[0], related: diagnostics.slice(1).map((x) => ({ file: x.file, span: x.span, message: x.message })) };
    const out = renderDiagnostics([d], { texts });
    expect(out.match(/related: many\.mcl/g)).toHaveLength(MAX_RELATED);
    expect(out).toContain(`related: ... and ${99 - MAX_RELATED} more related locations`);
    const doc = diagnosticsDocument([d], { texts });
    expect(doc.diagnostics[0].related).toHaveLength(MAX_RELATED);
    expect(doc.diagnostics[0].related_omitted).toBe(99 - MAX_RELATED);
    const sarif = sarifDocument([d], { texts, artifactPath: (f) => f, rules: [], toolVersion: '0' }) as any;
    expect(sarif.runs[0].results[0].relatedLocations).toHaveLength(MAX_RELATED);
    expect(sarif.runs[0].results[0].properties.relatedLocationsOmitted).toBe(99 - MAX_RELATED);
  });
});
