// Signature help: what can be written inside the braces of an instance
// (`app = App { ... }`: the component's parameters and the instance settings)
// and of a channel (`connect a.p -> b.q { ... }`: its attributes), each with
// its type or form and documentation, the one at the cursor highlighted.
//
// The braces are the language's argument lists, so the help opens on `{` and
// moves on `,` and `;` (the separators of those blocks), as it does on `(`
// and `,` elsewhere.

import type { ConnectDecl, InstanceDecl, ParamDecl } from '@mcl/language';
import {
  MarkupKind,
  type MarkupContent,
  type ParameterInformation,
  type Position,
  type SignatureHelp,
  type SignatureInformation,
} from 'vscode-languageserver';
import type { Snapshot } from '../analysis';
import { nodesAt } from '../ast-util';
import { markdownToPlainText } from '../client';
import { operationsOf, protocolOf, resolveInstance } from '../model';
import type { ServerContext } from '../service';

export const SIGNATURE_TRIGGERS = ['{', ',', ';'];
export const SIGNATURE_RETRIGGERS = [' ', '='];

interface Slot {
  /** The text shown in the signature. */
  label: string;
  /** The words that select this slot when written at its start. */
  keys: string[];
  doc: string;
}

/** The settings an instance may give (spec/syntax.md, "Systems"), with what each does. */
const INSTANCE_SETTINGS: Slot[] = [
  { label: 'single', keys: ['single'], doc: 'One instance (the default).' },
  { label: 'replicas N', keys: ['replicas'], doc: '`N` identical instances, each a fork of the template guest; a connection to the component is spread over them.' },
  {
    label: 'per session [pool N] [max N]',
    keys: ['per', 'pool'],
    doc: 'A fresh fork for every session on a provided port; `pool` keeps forks ready, `max` bounds the sessions at once.',
  },
  {
    label: 'created by INSTANCE.PORT',
    keys: ['created'],
    doc: 'The instances a factory port creates at run time: none at deploy, at most the factory\'s `max` per creator, each wired as this declaration says.',
  },
  {
    label: 'restart always | on-failure [max N] | never',
    keys: ['restart'],
    doc: 'What the supervisor does when the guest stops; `on-failure max N` gives up after N restarts.',
  },
  { label: 'memory SIZE', keys: ['memory'], doc: "The guest's memory, a size such as `256MiB`." },
  { label: 'vcpus N', keys: ['vcpus'], doc: 'Virtual CPUs of the guest.' },
  { label: 'label LABEL', keys: ['label'], doc: 'The information-flow label of the instance (declared in a `labels` block).' },
];

const SETTING_OF_KIND: Record<string, string> = {
  RestartMember: 'restart',
  MemoryMember: 'memory',
  VcpusMember: 'vcpus',
  LabelMember: 'label',
};

/** A channel's attributes (spec/syntax.md, "Systems"). */
const CHANNEL_ATTRIBUTES: Slot[] = [
  { label: 'rate N/s [burst N]', keys: ['rate', 'burst'], doc: 'Messages per second (or `/min`, `/h`) the broker lets through, with an optional burst; more are refused.' },
  { label: 'max_message SIZE', keys: ['max_message'], doc: 'The largest message the broker passes, a size such as `64KiB`.' },
  { label: 'timeout DURATION', keys: ['timeout'], doc: 'How long a call may wait for its response, a duration such as `2s`.' },
  { label: 'allow op, ...', keys: ['allow'], doc: "The operations of the port's protocol this channel carries; the others are refused." },
  { label: 'max_inflight N', keys: ['max_inflight'], doc: 'Calls outstanding at once at most.' },
  { label: 'declassifies LABEL -> LABEL', keys: ['declassifies'], doc: 'Data with the first label that this channel delivers, either way, arrives with the second (spec/policy.md).' },
  { label: 'query', keys: ['query'], doc: "The requests carry none of the requiring side's data: only responses flow, back to it (spec/policy.md)." },
];

const ATTR_OF_KIND: Record<string, string> = {
  RateAttr: 'rate',
  MaxMessageAttr: 'max_message',
  TimeoutAttr: 'timeout',
  AllowAttr: 'allow',
  MaxInflightAttr: 'max_inflight',
  DeclassifyAttr: 'declassifies',
  QueryAttr: 'query',
};

export function signatureHelp(s: Snapshot, c: ServerContext, file: string, position: Position): SignatureHelp | null {
  const ast = s.program.files.get(file);
  const lines = s.lines(file);
  const text = s.text(file);
  if (!ast || !lines || text === undefined) return null;
  const offset = lines.offsetAt(position);
  const path = nodesAt(ast, offset);
  for (let i = path.length - 1; i >= 0; i--) {
    const n = path[i];
    if (n.kind === 'InstanceDecl') {
      const open = text.indexOf('{', n.component.span.end);
      if (!inside(text, open, n.span.end, offset)) return null;
      return instanceHelp(s, c, file, n, text, open, offset);
    }
    if (n.kind === 'ConnectDecl') {
      const open = text.indexOf('{', n.to.span.end);
      if (!inside(text, open, n.span.end, offset)) return null;
      return channelHelp(s, c, file, n, text, open, offset);
    }
  }
  return null;
}

/** The cursor is between a block's braces (or after an opening brace not yet closed). */
function inside(text: string, open: number, end: number, offset: number): boolean {
  if (open < 0 || open >= end || offset <= open) return false;
  return text[end - 1] === '}' ? offset < end : offset <= end;
}

/** The first word of the member being written at the cursor (after the last separator). */
function wordAtMemberStart(text: string, open: number, offset: number): string | undefined {
  let i = offset;
  while (i > open + 1 && !/[{,;\n]/.test(text[i - 1])) i--;
  return /^\s*([A-Za-z_][A-Za-z0-9_]*)/.exec(text.slice(i, offset))?.[1];
}

function instanceHelp(s: Snapshot, c: ServerContext, file: string, inst: InstanceDecl, text: string, open: number, offset: number): SignatureHelp | null {
  const r = resolveInstance(s, file, inst);
  if (!r.component || r.decl?.kind !== 'ComponentDecl') return null;
  const declared = new Map(r.decl.members.filter((m): m is ParamDecl => m.kind === 'ParamDecl').map((m) => [m.name.name, m]));
  const slots: Slot[] = r.params.map((p) => {
    const decl = declared.get(p.name);
    const given = decl?.default ? ` = ${(s.text(r.component!.file) ?? '').slice(decl.default.span.start, decl.default.span.end)}` : '';
    const facts = [`\`${p.name}\`: \`${p.type}\``, decl?.default ? `default \`${given.slice(3)}\`` : 'required', ...(p.sensitive ? ['sensitive (kept out of logs and the plan output)'] : [])];
    return { label: `${p.name}: ${p.type}${given}${p.sensitive ? ' sensitive' : ''}`, keys: [p.name], doc: [facts.join(', '), decl?.doc].filter(Boolean).join('\n\n') };
  });
  slots.push(...INSTANCE_SETTINGS);

  // The slot under the cursor: the member it is in, else the word being written, else the first required parameter not given.
  let active: number | undefined;
  const member = inst.settings.find((m) => m.span.start <= offset && offset <= m.span.end);
  const overridden = new Set(inst.settings.flatMap((m) => (m.kind === 'ParamOverride' ? [m.name.name] : [])));
  if (member?.kind === 'ParamOverride') active = slots.findIndex((sl) => sl.keys[0] === member.name.name && sl.label.includes(':'));
  else if (member) {
    const key = member.kind === 'InstancesMember' ? { single: 'single', replicas: 'replicas', per_session: 'per', created: 'created' }[member.mode] : SETTING_OF_KIND[member.kind];
    active = slots.findIndex((sl) => !sl.label.includes(':') && sl.keys.includes(key ?? ''));
  }
  if (active === undefined || active < 0) {
    const word = wordAtMemberStart(text, open, offset);
    if (word) active = slots.findIndex((sl) => sl.keys.includes(word));
  }
  if (active === undefined || active < 0) {
    active = r.params.findIndex((p) => p.origin === 'unset' && !overridden.has(p.name));
    if (active < 0) active = r.params.findIndex((p) => !overridden.has(p.name));
  }
  const doc = [r.component.doc, `Parameters of \`${r.component.name}\` (\`name = value\`) and the instance settings.`].filter(Boolean).join('\n\n');
  return build(c, `${inst.name.name} = ${r.component.name}`, slots, doc, active);
}

function channelHelp(s: Snapshot, c: ServerContext, file: string, conn: ConnectDecl, text: string, open: number, offset: number): SignatureHelp {
  const slots = CHANNEL_ATTRIBUTES.map((sl) => ({ ...sl }));
  // `allow` lists the operations of the protocol of the required port.
  const ops = channelOperations(s, file, conn);
  if (ops.length) slots.find((sl) => sl.keys[0] === 'allow')!.doc += ` This protocol has ${ops.map((o) => `\`${o}\``).join(', ')}.`;
  let active: number | undefined;
  const attr = conn.attrs.find((a) => a.span.start <= offset && offset <= a.span.end);
  if (attr) active = slots.findIndex((sl) => sl.keys[0] === ATTR_OF_KIND[attr.kind]);
  if (active === undefined || active < 0) {
    const word = wordAtMemberStart(text, open, offset);
    active = word ? slots.findIndex((sl) => sl.keys.includes(word)) : -1;
  }
  if (active < 0) {
    // The first attribute not given yet.
    const given = new Set(conn.attrs.map((a) => ATTR_OF_KIND[a.kind]));
    active = slots.findIndex((sl) => !given.has(sl.keys[0]));
  }
  const label = `connect ${text.slice(conn.from.span.start, conn.from.span.end)} -> ${text.slice(conn.to.span.start, conn.to.span.end)}`;
  return build(c, label, slots, 'The attributes of the channel, enforced by the broker.', active);
}

/** Operation names of the protocol of a connection's required port. */
function channelOperations(s: Snapshot, file: string, conn: ConnectDecl): string[] {
  const port = s.refs.resolveSpan(file, conn.from.port.span);
  const protocol = port ? protocolOf(s, port) : undefined;
  return protocol ? operationsOf(s, protocol).map((o) => o.name) : [];
}

function build(c: ServerContext, head: string, slots: Slot[], doc: string, active: number): SignatureHelp {
  // `app = App { a: int, replicas N, ... }`: each slot's place in the label is given by offsets when the client takes them.
  let label = `${head} { `;
  const parameters: ParameterInformation[] = [];
  slots.forEach((sl, i) => {
    if (i > 0) label += ', ';
    const start = label.length;
    label += sl.label;
    parameters.push({ label: c.client.signatureLabelOffsets ? [start, label.length] : sl.label, documentation: content(c, sl.doc) });
  });
  label += ' }';
  const signature: SignatureInformation = { label, documentation: content(c, doc), parameters };
  return { signatures: [signature], activeSignature: 0, activeParameter: Math.max(0, Math.min(active, parameters.length - 1)) };
}

function content(c: ServerContext, markdown: string): MarkupContent | string {
  return c.client.signatureMarkdown ? { kind: MarkupKind.Markdown, value: markdown } : markdownToPlainText(markdown);
}
