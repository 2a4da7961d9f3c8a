// spec/diagnostics.md against the code: every registered diagnostic code is
// documented under its registry title and severity, every documented code is
// registered, every registered code is emitted somewhere in the language or
// compiler sources, and every example in the document reports the code it is
// written for (with the message and hint the document quotes).

import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, test } from 'vitest';
import { checkPolicies, compile, type CompileResult, type CompilerHost, type PolicyInput } from '@mcl/compiler';
import { Codes, diagnosticInfos, formatDiagnostic, LineIndex, type Diagnostic, type DiagnosticInfo, type Span } from '@mcl/language';
import type { PlanTarget } from '@mcl/plan';
import { exitCodeFor } from '../../cli/src/compile';
import { DOC_PATH, REPO, readDiagnosticsDoc, rewriteQuotedOutput, type Example } from './doc';
import { compileExample, MemoryHost } from './examples';

/** The one registry of codes, and the file that holds it. */
const REGISTRY_FILE = 'language/src/codes.ts';
const ALL: readonly DiagnosticInfo[] = diagnosticInfos;
const BY_CODE = new Map(ALL.map((i) => [i.code, i]));

// UPDATE_GOLDEN=1 rewrites the quoted output of every checked example from the
// compiler's current messages (review the diff: the prose may need updating too).
if (process.env.UPDATE_GOLDEN) {
  const text = readFileSync(DOC_PATH, 'utf8');
  const updated = rewriteQuotedOutput(text, (section, example) => quote(compileExample(section, example), example.code));
  if (updated !== text) writeFileSync(DOC_PATH, updated);
}

const doc = readDiagnosticsDoc();
const SECTIONS = new Map(doc.sections.map((s) => [s.code, s]));

describe('spec/diagnostics.md documents exactly the registered codes', () => {
  test('no code is registered twice', () => {
    const seen = new Map<string, number>();
    for (const i of ALL) seen.set(i.code, (seen.get(i.code) ?? 0) + 1);
    expect([...seen].filter(([, n]) => n > 1).map(([c]) => c)).toEqual([]);
  });

  test('every registered code has a heading with its registry title', () => {
    const problems: string[] = [];
    for (const info of ALL) {
      const s = SECTIONS.get(info.code);
      if (!s) problems.push(`${info.code} (${info.title}) has no \`### ${info.code}: ${info.title}\` heading`);
      else if (s.title !== info.title) problems.push(`${info.code}: heading says "${s.title}", the registry says "${info.title}"`);
    }
    expect(problems).toEqual([]);
  });

  test('every heading names a registered code, once, in code order', () => {
    const codes = doc.sections.map((s) => s.code);
    expect(codes.filter((c) => !BY_CODE.has(c)).map((c) => `${c} is documented but not registered`)).toEqual([]);
    expect(codes.filter((c, i) => codes.indexOf(c) !== i).map((c) => `${c} has two headings`)).toEqual([]);
    expect(codes).toEqual([...codes].sort());
  });

  test('every section states the registry severity and stage', () => {
    const problems: string[] = [];
    for (const s of doc.sections) {
      const info = BY_CODE.get(s.code);
      if (!info) continue;
      const m = /\*\*Severity:\*\* (error|warning|info)\b.*\*\*Stage:\*\* (\w+)/.exec(s.body);
      if (!m) problems.push(`${s.code}: no "**Severity:** ... **Stage:** ..." line`);
      else if (m[1] !== info.severity || m[2] !== info.stage) problems.push(`${s.code}: documented as ${m[1]}/${m[2]}, registered as ${info.severity}/${info.stage}`);
    }
    expect(problems).toEqual([]);
  });

  test('example blocks sit inside the section of a code', () => {
    expect(doc.strayExamples.map((e) => `line ${e.line}: ${e.code}`)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// (b) Every registered code is emitted.
//
// The sources are parsed with the TypeScript compiler, so comments and text
// that merely mention a code do not count. A code counts as emitted where it
// is the value a diagnostic is built from: an argument of a call (`report(Codes.UnknownInstance, ...)`)
// or the `code` property of an object literal (`{ code: Codes.OnlyFromViolated, ... }`,
// `{ code: Codes.TooManyErrors.code }`), possibly through a conditional
// expression. A code written as a string literal counts
// too. Comparisons
// such as `d.code === Codes.InvalidCharacter.code` and membership tests do not count.

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const f of readdirSync(dir)) {
    const abs = join(dir, f);
    if (statSync(abs).isDirectory()) out.push(...sourceFiles(abs));
    else if (f.endsWith('.ts') && !f.endsWith('.d.ts')) out.push(abs);
  }
  return out;
}

function isEmitPosition(node: ts.Node): boolean {
  let n = node;
  for (;;) {
    const p = n.parent;
    if (!p) return false;
    if (ts.isParenthesizedExpression(p) || ts.isAsExpression(p) || ts.isSatisfiesExpression(p) || ts.isNonNullExpression(p)) n = p;
    else if (ts.isConditionalExpression(p) && (p.whenTrue === n || p.whenFalse === n)) n = p;
    else if ((ts.isCallExpression(p) || ts.isNewExpression(p)) && p.arguments?.some((a) => a === n)) return true;
    else if (ts.isPropertyAssignment(p) && p.initializer === n) return ts.isIdentifier(p.name) && p.name.text === 'code';
    else return false;
  }
}

const CODE_BY_NAME = new Map(Object.entries(Codes).map(([name, info]) => [name, info.code]));
const REGISTRY_NAMES = new Set(['Codes']);

/** The codes one TypeScript source emits, with the 1-based line of each emission. */
function scanSource(fileName: string, text: string): { code: string; line: number }[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const found: { code: string; line: number }[] = [];
  const add = (code: string, node: ts.Node) => found.push({ code, line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1 });
  const visit = (node: ts.Node): void => {
    if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && /^MCL\d{4}$/.test(node.text)) {
      if (isEmitPosition(node)) add(node.text, node);
    } else if (ts.isPropertyAccessExpression(node) && ts.isIdentifier(node.expression) && REGISTRY_NAMES.has(node.expression.text)) {
      const code = CODE_BY_NAME.get(node.name.text);
      // `Codes.X` itself, or `Codes.X.code`.
      const outer = ts.isPropertyAccessExpression(node.parent) && node.parent.name.text === 'code' ? node.parent : node;
      if (code && isEmitPosition(outer)) add(code, node);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

/** Code -> places (`file:line`) where it is emitted in language/src and compiler/src, the registry excluded. */
function emittedCodes(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const file of [...sourceFiles(join(REPO, 'language', 'src')), ...sourceFiles(join(REPO, 'compiler', 'src'))]) {
    if (file === join(REPO, REGISTRY_FILE)) continue;
    for (const { code, line } of scanSource(file, readFileSync(file, 'utf8'))) {
      const l = found.get(code) ?? [];
      l.push(`${relative(REPO, file)}:${line}`);
      found.set(code, l);
    }
  }
  return found;
}

describe('the emission scan', () => {
  test('counts codes that build diagnostics and nothing else', () => {
    const src = [
      "// MCL0201 in a comment, and 'MCL0202' in a quoted comment",
      "const doc = 'see MCL0203';",
      "if (d.code === 'MCL0204') skip();",
      "const set = new Set(['MCL0205']);",
      "ctx.report('MCL0206', 'import cycle', file, span);",
      "report(ctx, { code: 'MCL0501', message: 'violated' });",
      "ctx.report(flag ? 'MCL0207' : 'MCL0211', msg, file, span);",
      'report(Codes.InvalidCharacter, start, end, msg);',
      'diags.push({ code: Codes.TooManyErrors.code, severity: Codes.TooManyErrors.severity });',
      'const parserCodes = new Set([Codes.MissingComma.code]);',
      'if (d.code === Codes.ExpectedToken.code) skip();',
      'ctx.report(Codes.UnknownInstance, msg, file, span);',
      'report(ctx, { code: Codes.OnlyFromViolated, message });',
      'if (d.code === Codes.UnknownName.code) fix();',
      'ctx.report(Codes.NoSuchName, msg, file, span);',
    ].join('\n');
    expect(scanSource('x.ts', src)).toEqual([
      { code: 'MCL0206', line: 5 },
      { code: 'MCL0501', line: 6 },
      { code: 'MCL0207', line: 7 },
      { code: 'MCL0211', line: 7 },
      { code: 'MCL0101', line: 8 },
      { code: 'MCL0118', line: 9 },
      { code: 'MCL0401', line: 12 },
      { code: 'MCL0501', line: 13 },
    ]);
  });
});

describe('every registered code is emitted by the language or compiler sources', () => {
  const emitted = emittedCodes();
  test('the scan finds emissions at all', () => {
    expect(emitted.size).toBeGreaterThan(50);
  });
  test(`every code of ${REGISTRY_FILE}`, () => {
    const unused = ALL.filter((i) => !emitted.has(i.code)).map((i) => `${i.code} ${i.title}`);
    // A code counts when it is a call argument or a `code:` property (see above); one passed through a variable is not seen.
    expect(unused, 'registered but never used to build a diagnostic').toEqual([]);
  });
  test('no unregistered code is emitted', () => {
    expect([...emitted].filter(([c]) => !BY_CODE.has(c)).map(([c, at]) => `${c} at ${at.join(', ')}`)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// (c) The examples report their codes.

interface Quoted {
  file: string;
  line: number;
  column: number;
  severity: string;
  code: string;
  message: string;
  hint?: string;
  fixes: string[];
}

/**
 * The compiler output an example quotes (the ```text block after it):
 * `file:line:col: severity CODE: message`, then `  hint: ...` and a `  fix: <title>` per quick fix.
 */
function quotedOutput(example: Example): Quoted[] {
  const out: Quoted[] = [];
  for (const line of (example.output ?? '').split('\n')) {
    const m = /^(\S+):(\d+):(\d+): (error|warning|info) (MCL\d{4}): (.*)$/.exec(line);
    if (m) out.push({ file: m[1], line: +m[2], column: +m[3], severity: m[4], code: m[5], message: m[6], fixes: [] });
    const h = /^ {2}hint: (.*)$/.exec(line);
    if (h && out.length) out[out.length - 1].hint = h[1];
    const f = /^ {2}fix: (.*)$/.exec(line);
    if (f && out.length) out[out.length - 1].fixes.push(f[1]);
  }
  return out;
}

/** One diagnostic as the document quotes it: the location line, then its hint and quick fixes. */
function format(r: CompileResult, d: Diagnostic): string {
  return formatDiagnostic(d, new LineIndex(r.program.texts.get(d.file) ?? ''));
}

function render(r: CompileResult): string {
  return r.diagnostics.map((d) => format(r, d)).join('\n');
}

function matches(r: CompileResult, q: Quoted): boolean {
  return r.diagnostics.some((d: Diagnostic) => {
    if (d.code !== q.code || d.file !== q.file || d.severity !== q.severity || d.message !== q.message) return false;
    if (q.hint !== undefined && d.hint !== q.hint) return false;
    if (q.fixes.join('\n') !== (d.fixes ?? []).map((f) => f.title).join('\n')) return false;
    const p = new LineIndex(r.program.texts.get(d.file) ?? '').position(d.span.start);
    return p.line === q.line && p.column === q.column;
  });
}

/** The diagnostics of the section's own code, as the document quotes them. */
function quote(r: CompileResult, code: string): string {
  return r.diagnostics
    .filter((d) => d.code === code)
    .map((d) => format(r, d))
    .join('\n');
}

const GiB = 1024 * 1024 * 1024;
function policyInput(rules: PolicyInput['rules']): PolicyInput {
  return {
    target: { name: 'local', backend: 'kvm', memory_bytes: 4 * GiB, vcpus: 2, vcpu_overcommit: 4 } as PlanTarget,
    templates: [],
    instances: [],
    channels: [],
    exposures: [],
    rules,
    labels: { labels: [], edges: [], declaredAt: {} },
    origins: { instances: {}, channels: {}, exposures: {}, labels: {} },
  };
}

/**
 * The codes whose document examples are marked `check="no"`, each triggered
 * here by the means the section names (compile options, generated input, or
 * the policy checker called directly), so they are checked all the same.
 */
const GENERATED: Record<string, () => Diagnostic[]> = {
  // More than 120 levels of nested rules.
  MCL0110: () => compile(new MemoryHost({ 'main.mcl': `type T = ${'list<'.repeat(130)}int${'>'.repeat(130)}\n` }), { entries: ['main.mcl'], mclcVersion: 'spec' }).diagnostics,
  // More than 1000 syntax problems in one file.
  MCL0118: () => compile(new MemoryHost({ 'main.mcl': '@ '.repeat(1100) }), { entries: ['main.mcl'], mclcVersion: 'spec' }).diagnostics,
  MCL0207: () => compile(new MemoryHost({ 'my-app.mcl': 'type T = int\n' }), { entries: ['my-app.mcl'], mclcVersion: 'spec' }).diagnostics,
  MCL0211: () => compile(new MemoryHost({}), { entries: ['nope.mcl'], mclcVersion: 'spec' }).diagnostics,
  // The parser never passes a budget value of the wrong kind on, so the checker is given one directly.
  MCL0519: () => {
    const span: Span = { start: 0, end: 1 };
    const rule = { kind: 'BudgetRule', resource: 'memory', value: { kind: 'Int', raw: '4', value: 4, span }, span };
    return checkPolicies(policyInput([{ rule: rule as unknown as PolicyInput['rules'][number]['rule'], file: 'main.mcl', scope: '' }])).diagnostics;
  },
  // An input whose instances cannot be read stands for any bug inside the checker.
  MCL0599: () => {
    const input = policyInput([]);
    Object.defineProperty(input, 'instances', {
      get() {
        throw new Error('unreadable instances');
      },
    });
    return checkPolicies(input).diagnostics;
  },
  // A parse cache that throws stands for any bug inside the pipeline.
  MCL0799: () => {
    const host: CompilerHost = new MemoryHost({ 'main.mcl': 'type T = int\n' });
    const cache = {
      get: () => {
        throw new Error('boom');
      },
      set: () => {},
    };
    return compile(host, { entries: ['main.mcl'], mclcVersion: 'spec', cache }).diagnostics;
  },
};

describe('the examples of spec/diagnostics.md report their codes', () => {
  test('every section has an example of its own code', () => {
    const problems: string[] = [];
    for (const s of doc.sections) {
      if (s.examples.length === 0) problems.push(`${s.code} has no \`\`\`mcl title="${s.code}" example`);
      for (const e of s.examples) if (e.code !== s.code) problems.push(`${s.code}: the example on line ${e.line} is titled ${e.code}`);
    }
    expect(problems).toEqual([]);
  });

  test('unchecked examples say why and are triggered here instead', () => {
    const unchecked = doc.sections.filter((s) => s.examples.some((e) => !e.checked)).map((s) => s.code);
    expect(unchecked.filter((c) => !/^Not checked: \S/m.test(SECTIONS.get(c)!.body))).toEqual([]);
    expect(unchecked.sort()).toEqual(Object.keys(GENERATED).sort());
    const quotedButUnchecked = doc.sections.flatMap((s) => s.examples.filter((e) => !e.checked && e.output !== undefined).map((e) => `${s.code} (line ${e.line})`));
    expect(quotedButUnchecked, 'an unchecked example cannot quote output').toEqual([]);
  });

  for (const [code, run] of Object.entries(GENERATED)) {
    test(`${code} (generated input)`, () => {
      const ds = run();
      const d = ds.find((x) => x.code === code);
      expect(d, `expected ${code}, got:\n${ds.slice(0, 5).map((x) => `${x.code} ${x.message}`).join('\n')}`).toBeDefined();
      expect(d!.severity).toBe(BY_CODE.get(code)?.severity);
    });
  }

  for (const s of doc.sections) {
    for (const ex of s.examples.filter((e) => e.checked)) {
      test(`${s.code} (example on line ${ex.line})`, () => {
        const r = compileExample(s, ex);
        const d = r.diagnostics.find((x) => x.code === ex.code);
        expect(d, `the example does not report ${ex.code}; it reports:\n${render(r)}`).toBeDefined();
        expect(d!.severity).toBe(BY_CODE.get(ex.code)?.severity);
        const quoted = quotedOutput(ex);
        expect(quoted.length, 'the example quotes no output (a ```text block after it)').toBeGreaterThan(0);
        for (const q of quoted) {
          expect(matches(r, q), `the document quotes\n  ${q.file}:${q.line}:${q.column}: ${q.severity} ${q.code}: ${q.message}${q.hint !== undefined ? `\n  hint: ${q.hint}` : ''}${q.fixes.map((f) => `\n  fix: ${f}`).join('')}\nbut the compiler says:\n${render(r)}`).toBe(true);
        }
      });
    }
  }

  test('the quoted output is of the example\'s own code', () => {
    const problems: string[] = [];
    for (const s of doc.sections) for (const e of s.examples) for (const q of quotedOutput(e)) if (q.code !== e.code) problems.push(`${s.code} (line ${e.line}) quotes ${q.code}`);
    expect(problems).toEqual([]);
  });
});

describe('the CLI', () => {
  // spec/cli.md: 3 when every error is an MCL05xx, 1 for any other error.
  test('each checked example exits with the code its section documents', () => {
    const problems: string[] = [];
    for (const s of doc.sections) {
      const m = /\*\*Exit code:\*\* (\d+)/.exec(s.body);
      for (const ex of s.examples.filter((e) => e.checked)) {
        const errors = compileExample(s, ex).diagnostics;
        const want = m ? Number(m[1]) : 0;
        if (exitCodeFor(errors) !== want) problems.push(`${s.code}: documented exit code ${m ? m[1] : 'none'}, the CLI gives ${exitCodeFor(errors)}`);
      }
    }
    expect(problems).toEqual([]);
  });
});
