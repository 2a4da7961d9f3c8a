// Parameters of systems: `param tenant: label`, `param replicas: int = 1`,
// `param quota: size = 1GiB`. A parameterised system is checked once per
// distinct set of arguments it is instantiated with, so the settings and the
// policies inside it hold for each instantiation on its own (spec/syntax.md,
// "Parameterised systems").
//
// An argument is kept as the expression written at the instantiation (or the
// parameter's default) together with its module, and substituted where the
// parameter is used: each use then checks the value with the check the
// setting always has (memoryOf, modeOf, useLabel, Types.value), and a wrong
// value is reported where it was written, which names the instantiation.

import type { Expr, ParamDecl, SystemDecl } from '@mcl/language';
import { Codes } from '@mcl/language';
import { Ctx, textOf, type DeclEntry, type Module } from '../context';
import { typeText, type RType, type Types } from '../types/message-types';
import { useLabel, type LabelInfo } from './components';

/**
 * What a parameter stands for: a label (`label p` of an instance), a size
 * (`memory p`, `budget memory p`), a rate (`rate p` of a channel), or a value of a message type (an `int` for
 * `replicas p`, `vcpus p`, `budget vcpus p`, or any type for a component
 * parameter `x = p`).
 */
export type SysParamKind = 'label' | 'size' | 'rate' | 'value';

export interface SysParam {
  name: string;
  decl: ParamDecl;
  kind: SysParamKind;
  type?: RType;
  symbol: string;
}

/** An argument: the expression as written and the module it is written in. */
export interface Arg {
  expr: Expr;
  m: Module;
}

/** The arguments of one instantiation; a parameter without a usable value is absent. */
export type Binding = ReadonlyMap<string, Arg>;

/** The kind a parameter's written type gives it: the names `label`, `size` and `rate` are the setting kinds. */
function kindOf(d: ParamDecl): SysParamKind {
  const t = d.type;
  if (t.kind === 'NamedType' && t.name.parts.length === 1) {
    const n = t.name.parts[0].name;
    if (n === 'label' || n === 'size' || n === 'rate') return n;
  }
  return 'value';
}

/** Declares a system's parameters (symbols for the editor, types checked); duplicates are reported. */
export function declareParams(ctx: Ctx, types: Types, e: DeclEntry): Map<string, SysParam> {
  const d = e.decl as SystemDecl;
  const m = e.module;
  const out = new Map<string, SysParam>();
  for (const mem of d.members) {
    if (mem.kind !== 'ParamDecl') continue;
    const name = mem.name.name;
    if (!name) continue;
    const prev = out.get(name);
    if (prev) {
      ctx.report(Codes.DuplicateParameter, `parameter \`${name}\` is declared twice`, m.file, mem.name.span, {
        hint: 'remove or rename one of them',
      });
      continue;
    }
    const kind = kindOf(mem);
    const shown = kind === 'value' ? typeText(mem.type, m) : kind;
    const symbol = ctx.declare('param', m.file, `${e.name}.${name}`, mem.name, mem.span, `${e.qname}.${name}`, () => `param ${name}: ${shown}`, mem.doc, e.symbol);
    const p: SysParam = { name, decl: mem, kind, symbol };
    if (kind === 'value') p.type = types.check(mem.type, m, { path: `${e.name}.${name}`, container: symbol, qname: `${e.qname}.${name}` });
    if (mem.sensitive) {
      ctx.report(Codes.InvalidComponentSetting, `\`sensitive\` applies to component parameters, not to \`${name}\` of system \`${e.name}\``, m.file, mem.span, {
        hint: 'a system parameter is read by the compiler, not passed to a program: remove `sensitive`, and mark the component parameter it feeds instead',
      });
    }
    out.set(name, p);
  }
  return out;
}

/**
 * Checks an argument against its parameter's kind, reporting at the argument;
 * true when it is usable. A label must be a declared label, a size a size
 * literal, a value a value of the parameter's type.
 */
export function checkArg(ctx: Ctx, types: Types, labels: LabelInfo, p: SysParam, a: Arg): boolean {
  const what = `\`${p.name}\``;
  switch (p.kind) {
    case 'label': {
      const id = a.expr.kind === 'Ref' && a.expr.name.parts.length === 1 ? a.expr.name.parts[0] : undefined;
      if (!id) {
        if (a.expr.kind !== 'MissingExpr') {
          ctx.report(Codes.WrongValueType, `${what} must be a label, not \`${textOf(a.m, a.expr.span)}\``, a.m.file, a.expr.span, { hint: 'write a declared label, e.g. `internal`' });
        }
        return false;
      }
      return useLabel(ctx, labels, a.m, id) !== undefined;
    }
    case 'size':
      if (a.expr.kind === 'Size') return true;
      if (a.expr.kind !== 'MissingExpr') {
        ctx.report(Codes.WrongValueType, `${what} must be a size such as \`256MiB\`, not \`${textOf(a.m, a.expr.span)}\``, a.m.file, a.expr.span, { hint: 'write a size with a unit: `128MiB`, `1GiB`' });
      }
      return false;
    case 'rate':
      if (a.expr.kind === 'Rate') return true;
      if (a.expr.kind !== 'MissingExpr') {
        ctx.report(Codes.WrongValueType, `${what} must be a rate such as \`100/s\`, not \`${textOf(a.m, a.expr.span)}\``, a.m.file, a.expr.span, { hint: 'write a rate: `100/s`, `20/min`' });
      }
      return false;
    case 'value':
      return !!p.type && types.value(a.expr, p.type, a.m, what) !== undefined;
  }
}

/** A key that is the same exactly for the same arguments (where each was written): instantiations with equal keys share one check. */
export function bindingKey(b: Binding): string {
  return [...b.entries()]
    .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
    .map(([n, a]) => `${n}=${a.m.file}:${a.expr.span.start}:${a.expr.span.end}`)
    .join(',');
}

/** The parameter a setting's value names, when it is a bare name of one of the system's parameters. */
export function paramNamed(params: ReadonlyMap<string, SysParam>, e: Expr | undefined): SysParam | undefined {
  if (!e || e.kind !== 'Ref' || e.name.parts.length !== 1) return undefined;
  return params.get(e.name.parts[0].name);
}
