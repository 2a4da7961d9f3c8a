// Diagnostics as SARIF 2.1.0, for code-scanning services.
//
// Rules come from the diagnostic code registries, so every result has a stable
// `ruleId` (the MCL code) and a rule description. Artifact paths are relative
// to the repository root (`%SRCROOT%`), regions carry both line/column
// (code-point columns, declared with `columnKind`) and byte offsets, and each
// result has a partial fingerprint that survives unrelated edits above it
// (it hashes the code, file, message and the text of the flagged line, not
// the line number), so alerts are not duplicated between runs.

import { createHash } from 'node:crypto';
import { LineIndex, type Diagnostic, type DiagnosticInfo, type Span } from '@mcl/language';
import { clipLine, clipMessage, limitDiagnostics, LONG_LINE, type DiagnosticLimits } from './limits';

export interface SarifOptions extends DiagnosticLimits {
  texts: ReadonlyMap<string, string>;
  /** Repository-relative path of a diagnostic's file (forward slashes). */
  artifactPath: (file: string) => string;
  /** Every known code, for the rule table. */
  rules: readonly DiagnosticInfo[];
  toolVersion: string;
}

const LEVEL = { error: 'error', warning: 'warning', info: 'note' } as const;
const SARIF_SCHEMA = 'https://json.schemastore.org/sarif-2.1.0.json';
const INFORMATION_URI = 'https://github.com/mcl-lang/mcl/blob/main/spec/diagnostics.md';

export function sarifDocument(diagnostics: readonly Diagnostic[], opts: SarifOptions): Record<string, unknown> {
  const known = new Map(opts.rules.map((r) => [r.code, r]));
  // Rules: every registered code, plus any code seen in results that no registry lists.
  const codes = new Set<string>(known.keys());
  for (const d of diagnostics) codes.add(d.code);
  const ruleIds = [...codes].sort();
  const ruleIndex = new Map(ruleIds.map((id, i) => [id, i]));
  const rules = ruleIds.map((id) => {
    const info = known.get(id);
    return {
      id,
      name: info ? ruleName(info.title) : id,
      shortDescription: { text: info?.title ?? id },
      helpUri: `${INFORMATION_URI}#${id.toLowerCase()}`,
      defaultConfiguration: { level: LEVEL[info?.severity ?? 'error'] },
      properties: { stage: info?.stage ?? 'unknown' },
    };
  });

  const indexes = new Map<string, LineIndex | null>();
  const index = (file: string) => {
    if (!indexes.has(file)) {
      const t = opts.texts.get(file);
      indexes.set(file, t === undefined ? null : new LineIndex(t));
    }
    return indexes.get(file)!;
  };
  /** The flagged line for the snippet and the fingerprint: whole, or the window of a long line (limits.ts). */
  const flaggedLine = (idx: LineIndex, offset: number): string => {
    const line = idx.lineOf(offset);
    const raw = idx.lineText(line);
    if (raw.length <= LONG_LINE) return raw;
    const at = offset - idx.lineStart(line);
    return clipLine(raw, at, at).text;
  };
  const location = (file: string, span: Span, message?: string) => {
    const idx = index(file);
    const physicalLocation: Record<string, unknown> = {
      artifactLocation: { uri: opts.artifactPath(file), uriBaseId: '%SRCROOT%' },
    };
    if (idx) {
      const s = idx.position(span.start);
      const e = idx.position(Math.max(span.start, span.end));
      physicalLocation.region = {
        startLine: s.line,
        startColumn: s.column,
        endLine: e.line,
        endColumn: e.column,
        byteOffset: s.byte,
        byteLength: e.byte - s.byte,
        snippet: { text: flaggedLine(idx, span.start) },
      };
    }
    return message === undefined ? { physicalLocation } : { physicalLocation, message: { text: clipMessage(message) } };
  };

  const { shown, omitted } = limitDiagnostics(diagnostics, opts.texts, opts);
  const results = shown.map((d) => {
    const idx = index(d.file);
    const lineText = idx ? flaggedLine(idx, d.span.start).trim() : '';
    const fingerprint = createHash('sha256').update([d.code, opts.artifactPath(d.file), d.message, lineText].join('\u0000')).digest('hex').slice(0, 32);
    const result: Record<string, unknown> = {
      ruleId: d.code,
      ruleIndex: ruleIndex.get(d.code),
      level: LEVEL[d.severity],
      message: { text: clipMessage(d.hint ? `${d.message} Hint: ${d.hint}` : d.message) },
      locations: [location(d.file, d.span)],
      partialFingerprints: { 'mclDiagnostic/v1': fingerprint },
    };
    if (d.related?.length) result.relatedLocations = d.related.map((r, i) => ({ id: i + 1, ...location(r.file, r.span, r.message) }));
    if (d.relatedOmitted) result.properties = { relatedLocationsOmitted: d.relatedOmitted };
    if (d.fixes?.length) {
      result.fixes = d.fixes.map((f) => ({
        description: { text: clipMessage(f.title) },
        artifactChanges: f.edits.map((e) => {
          const eidx = index(e.file);
          const s = eidx?.position(e.span.start);
          const en = eidx?.position(e.span.end);
          return {
            artifactLocation: { uri: opts.artifactPath(e.file), uriBaseId: '%SRCROOT%' },
            replacements: [
              {
                deletedRegion: s && en ? { byteOffset: s.byte, byteLength: en.byte - s.byte } : { byteOffset: 0, byteLength: 0 },
                insertedContent: { text: e.newText },
              },
            ],
          };
        }),
      }));
    }
    return result;
  });

  const run: Record<string, unknown> = {
    tool: { driver: { name: 'mclc', version: opts.toolVersion, semanticVersion: opts.toolVersion, informationUri: INFORMATION_URI, rules } },
    columnKind: 'unicodeCodePoints',
    originalUriBaseIds: { '%SRCROOT%': { description: { text: 'The repository root.' } } },
    results,
  };
  if (omitted) {
    // Results left out by the limits are said in a notification of the run, and counted in its properties.
    run.invocations = [
      {
        executionSuccessful: true,
        toolExecutionNotifications: [{ descriptor: { id: 'mclc/omitted-results' }, level: 'warning', message: { text: omitted.summary } }],
      },
    ];
    run.properties = { omittedResults: omitted.count, omittedErrors: omitted.error_count, omittedWarnings: omitted.warning_count, omittedNotes: omitted.info_count };
  }
  return { $schema: SARIF_SCHEMA, version: '2.1.0', runs: [run] };
}

/** `Unknown module` -> `UnknownModule`: SARIF rule names are identifiers. */
function ruleName(title: string): string {
  return title
    .replace(/[^A-Za-z0-9 ]+/g, ' ')
    .split(/\s+/)
    .filter(Boolean)
    .map((w) => w[0].toUpperCase() + w.slice(1))
    .join('');
}

