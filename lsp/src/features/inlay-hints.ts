// Inlay hints after each instance of a system: how many VMs it becomes and
// their memory when the component is replicated or forked per session, and
// the parameter values it gets from defaults (those not set at the instance).

import type { InstanceDecl, SystemDecl } from '@mcl/language';
import { InlayHintKind, type InlayHint, type Range } from 'vscode-languageserver';
import type { Snapshot } from '../analysis';
import { formatSize } from '../ast-util';
import { resolveInstance } from '../model';
import type { ServerContext } from '../service';

export function inlayHints(s: Snapshot, _c: ServerContext, file: string, range: Range): InlayHint[] {
  const ast = s.program.files.get(file);
  const lines = s.lines(file);
  if (!ast || !lines) return [];
  const from = lines.offsetAt(range.start);
  const to = lines.offsetAt(range.end);
  const out: InlayHint[] = [];
  for (const d of ast.decls) {
    if (d.kind !== 'SystemDecl' || d.span.end < from || d.span.start > to) continue;
    for (const m of (d as SystemDecl).members) {
      if (m.kind !== 'InstanceDecl' || m.span.end < from || m.span.start > to) continue;
      const hint = instanceHint(s, file, m);
      if (!hint) continue;
      out.push({ position: lines.lspPosition(m.component.span.end), label: hint, kind: InlayHintKind.Type, paddingLeft: true });
    }
  }
  return out;
}

function instanceHint(s: Snapshot, file: string, inst: InstanceDecl): string | undefined {
  if (inst.component.parts.length === 0) return undefined;
  const r = resolveInstance(s, file, inst);
  const parts: string[] = [];
  const memory = r.memoryBytes !== undefined ? formatSize(r.memoryBytes) : undefined;
  if (r.mode === 'replicas' && r.replicas !== undefined) {
    parts.push(`×${r.replicas}` + (memory ? ` · ${memory} each` : ''));
  } else if (r.createdBy) {
    parts.push(`created · max ${r.createdBy.max || '?'}` + (memory ? ` · ${memory} each` : ''));
  } else if (r.mode === 'per_session') {
    parts.push(`per session (pool ${r.pool ?? 0}${r.maxSessions !== undefined ? `, max ${r.maxSessions}` : ''})` + (memory ? ` · ${memory} each` : ''));
  }
  const defaults = r.params.filter((p) => p.origin === 'default').map((p) => `${p.name} = ${p.sensitive ? '(sensitive)' : p.value}`);
  if (defaults.length > 0) parts.push(defaults.join(', '));
  return parts.length > 0 ? parts.join(' · ') : undefined;
}
