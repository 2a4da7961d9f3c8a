// Reads spec/diagnostics.md into its parts: one section per `### MCLxxxx: title`
// heading, with the section's fenced examples. The tests and any tool that
// wants to replay the examples share this reader, so the conventions of the
// document are written down in one place:
//
//   ```mcl title="MCL0302"                an example that must report MCL0302 when compiled as main.mcl
//   ```mcl title="MCL0705" exclude="d"    ... compiled with options (exclude is comma-separated; target, system)
//   ```mcl file="a.mcl"                   another workspace file for the examples of the same section
//   ```mcl title="MCL0211" check="no"     an illustration that cannot be compiled from one file;
//                                         the section then says why in a paragraph starting "Not checked:"

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DOC_PATH = join(REPO, 'spec', 'diagnostics.md');

export interface Example {
  /** The code the example must report, from `title="..."`. */
  code: string;
  source: string;
  /** False when the block says `check="no"`. */
  checked: boolean;
  exclude?: string[];
  target?: string;
  system?: string;
  /** 1-based line of the opening fence, for messages. */
  line: number;
  /** The first ```text block after the example in its section: the compiler output it quotes. */
  output?: string;
}

export interface Section {
  code: string;
  title: string;
  line: number;
  /** The section's text without its heading, up to the next heading of level 1 to 3. */
  body: string;
  examples: Example[];
  /** Extra workspace files declared with `file="..."` blocks, by path. */
  files: Record<string, string>;
}

export interface DiagnosticsDoc {
  sections: Section[];
  /** `title="..."` blocks found outside any code section (always a mistake). */
  strayExamples: Example[];
}

const HEADING = /^### (MCL\d{4}): (.+?)\s*$/;
const OTHER_HEADING = /^#{1,3} /;
const FENCE_OPEN = /^```(\w+)(.*)$/;
const ATTR = /(\w+)="([^"]*)"/g;

function attrs(info: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of info.matchAll(ATTR)) out[m[1]] = m[2];
  return out;
}

/** Splits the document into code sections. Fenced blocks are skipped when looking for headings. */
export function parseDiagnosticsDoc(text: string): DiagnosticsDoc {
  const lines = text.split('\n');
  const sections: Section[] = [];
  const strayExamples: Example[] = [];
  let current: Section | undefined;
  let bodyLines: string[] = [];
  const close = () => {
    if (current) current.body = bodyLines.join('\n');
    current = undefined;
    bodyLines = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = FENCE_OPEN.exec(line);
    if (fence) {
      const start = i;
      const content: string[] = [];
      for (i++; i < lines.length && !lines[i].startsWith('```'); i++) content.push(lines[i]);
      if (current) bodyLines.push(line, ...content, '```');
      if (fence[1] === 'text' && current && current.examples.length) {
        const last = current.examples[current.examples.length - 1];
        if (last.output === undefined) last.output = content.join('\n');
        continue;
      }
      if (fence[1] !== 'mcl') continue;
      const a = attrs(fence[2]);
      const source = content.join('\n') + '\n';
      if (a.file !== undefined) {
        if (current) current.files[a.file] = source;
        continue;
      }
      if (a.title === undefined) continue;
      const ex: Example = {
        code: a.title,
        source,
        checked: a.check !== 'no',
        line: start + 1,
        ...(a.exclude !== undefined ? { exclude: a.exclude.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
        ...(a.target !== undefined ? { target: a.target } : {}),
        ...(a.system !== undefined ? { system: a.system } : {}),
      };
      if (current) current.examples.push(ex);
      else strayExamples.push(ex);
      continue;
    }
    const h = HEADING.exec(line);
    if (h) {
      close();
      current = { code: h[1], title: h[2], line: i + 1, body: '', examples: [], files: {} };
      sections.push(current);
      continue;
    }
    if (OTHER_HEADING.test(line)) {
      close();
      continue;
    }
    if (current) bodyLines.push(line);
  }
  close();
  return { sections, strayExamples };
}

export function readDiagnosticsDoc(): DiagnosticsDoc {
  return parseDiagnosticsDoc(readFileSync(DOC_PATH, 'utf8'));
}

/**
 * Replaces the quoted output (the first ```text block after each checked
 * example, inside the example's section) with `render(section, example)`.
 * Used to regenerate the quotes with UPDATE_GOLDEN=1 after messages change.
 */
export function rewriteQuotedOutput(text: string, render: (section: Section, example: Example) => string): string {
  const { sections } = parseDiagnosticsDoc(text);
  const byLine = new Map<number, { section: Section; example: Example }>();
  for (const section of sections) for (const example of section.examples) if (example.checked) byLine.set(example.line, { section, example });
  const lines = text.split('\n');
  const out: string[] = [];
  let pending: { section: Section; example: Example } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (HEADING.test(line) || OTHER_HEADING.test(line)) pending = undefined;
    if (line.startsWith('```')) {
      const start = i;
      const block = [line];
      for (i++; i < lines.length && !lines[i].startsWith('```'); i++) block.push(lines[i]);
      if (i < lines.length) block.push(lines[i]);
      const found = byLine.get(start + 1);
      if (found) pending = found;
      if (line === '```text' && pending) {
        out.push('```text', ...render(pending.section, pending.example).replace(/\n$/, '').split('\n'), '```');
        pending = undefined;
      } else out.push(...block);
      continue;
    }
    out.push(line);
  }
  return out.join('\n');
}
