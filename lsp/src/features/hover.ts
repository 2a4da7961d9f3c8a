// Hover: the declaration's signature, its `///` documentation, and what the
// compiler knows about it (a protocol's operations, a component's ports, an
// instance's effective settings and parameter values).

import type { SymbolInfo } from '@mcl/compiler';
import { MarkupKind, type Hover, type MarkupContent, type Position } from 'vscode-languageserver';
import { markdownToPlainText } from '../client';
import type { Snapshot } from '../analysis';
import type { ConnectDecl } from '@mcl/language';
import { findNamed, formatSize, nodesAt } from '../ast-util';
import { describeChannel } from './channel-hover';
import { toRange } from '../convert';
import { moduleOf, operationsOf, portsOf, protocolOf, resolveInstance } from '../model';
import type { ServerContext } from '../service';

export function hover(s: Snapshot, c: ServerContext, file: string, position: Position): Hover | null {
  const lines = s.lines(file);
  if (!lines) return null;
  const offset = lines.offsetAt(position);
  const hit = s.refs.symbolAt(file, offset);
  if (!hit) {
    // Elsewhere on a `connect` (its keyword, arrow or attributes): the resolved channel.
    const ast = s.program.files.get(file);
    const connect = ast ? nodesAt(ast, offset).find((n): n is ConnectDecl => n.kind === 'ConnectDecl') : undefined;
    if (!connect) return null;
    return { contents: markup(c, describeChannel(s, c, file, connect)), range: toRange(lines, connect.span) };
  }
  const value = describe(s, hit.symbol);
  return { contents: markup(c, value), range: toRange(lines, hit.ref.span) };
}

/** Markdown for clients that render it, the same text without markup for the others. */
function markup(c: ServerContext, markdown: string): MarkupContent {
  return c.client.markdownHover ? { kind: MarkupKind.Markdown, value: markdown } : { kind: MarkupKind.PlainText, value: markdownToPlainText(markdown) };
}

function code(lines: string[]): string {
  return '```mcl\n' + lines.join('\n') + '\n```';
}

/** Markdown describing a symbol. Exported for the benchmark and tests. */
export function describe(s: Snapshot, sym: SymbolInfo): string {
  const parts: string[] = [];
  const signature = [sym.detail || `${sym.kind} ${sym.qualifiedName}`];
  const extra: string[] = [];
  switch (sym.kind) {
    case 'protocol':
      for (const op of operationsOf(s, sym)) signature.push(`  ${op.detail || op.name}`);
      break;
    case 'type': {
      const text = s.text(sym.file);
      if (text) {
        const body = text.slice(sym.span.start, sym.span.end).split(/\r?\n/);
        // A long record is cut: the hover shows its shape, not all of it.
        signature.splice(0, 1, ...(body.length > 16 ? [...body.slice(0, 15), '  ...'] : body));
      }
      break;
    }
    case 'component':
    case 'system':
      for (const p of portsOf(s, sym)) signature.push(`  ${p.detail || p.name}`);
      break;
    case 'port':
    case 'export': {
      const protocol = protocolOf(s, sym);
      if (protocol) {
        const ops = operationsOf(s, protocol);
        if (ops.length > 0) extra.push(`Operations of \`${protocol.qualifiedName}\`:\n` + ops.map((o) => `- \`${o.detail || o.name}\``).join('\n'));
      }
      break;
    }
    case 'instance': {
      const file = s.program.files.get(sym.file);
      const inst = findNamed(file, 'InstanceDecl', sym.nameSpan);
      if (inst) {
        const r = resolveInstance(s, sym.file, inst);
        const facts: string[] = [];
        if (r.mode === 'replicas') facts.push(`${r.replicas ?? '?'} replicas`);
        else if (r.mode === 'per_session') facts.push(`a fork per session (pool ${r.pool ?? 0}${r.maxSessions ? `, max ${r.maxSessions}` : ''})`);
        else if (r.createdBy) facts.push(`created at run time by \`${r.createdBy.port}\` (at most ${r.createdBy.max || '?'} per creator)`);
        if (r.memoryBytes !== undefined) facts.push(`memory ${formatSize(r.memoryBytes)}`);
        if (r.vcpus !== undefined) facts.push(`${r.vcpus} vcpu${r.vcpus === 1 ? '' : 's'}`);
        if (facts.length > 0) extra.push(facts.join(' · '));
        if (r.params.length > 0) {
          extra.push(
            'Parameters:\n' +
              r.params
                .map((p) => {
                  const v = p.sensitive ? '(sensitive)' : (p.value ?? '(not set)');
                  const origin = p.origin === 'override' ? 'set here' : p.origin === 'default' ? 'default' : 'required';
                  return `- \`${p.name} = ${v}\` (${origin})`;
                })
                .join('\n'),
          );
        }
      }
      break;
    }
    case 'module': {
      // A module lists what it declares.
      const decls = s.refs
        .declarationsIn(sym.file)
        .filter((d) => !d.container && d.kind !== 'module')
        .sort((a, b) => a.nameSpan.start - b.nameSpan.start);
      if (decls.length > 0) extra.push('Declares:\n' + decls.slice(0, 30).map((d) => `- ${d.kind} \`${d.name}\``).join('\n'));
      break;
    }
    default:
      break;
  }
  parts.push(code(signature));
  if (sym.doc) parts.push(sym.doc);
  parts.push(...extra);
  if (sym.kind !== 'module') parts.push(`*${sym.kind}* in \`${moduleOf(s, sym)}\``);
  return parts.join('\n\n');
}
