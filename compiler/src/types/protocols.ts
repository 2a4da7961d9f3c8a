// Protocols: operations with their message types, and the optional `order`
// over operation names.

import type { Operation, OrderExpr, ProtocolDecl, TypeExpr } from '@mcl/language';
import { Codes } from '@mcl/language';
import type { MessageSchema } from '@mcl/plan';
import { Ctx, related, type DeclEntry, type Module } from '../context';
import { compileOrder } from './dfa';
import { didYouMean } from '../util/suggest';
import { Types, type RType } from './message-types';

export interface OpInfo {
  name: string;
  kind: 'call' | 'send' | 'notify';
  /** Schema name of the message from the sender. */
  input: string;
  /** Schema name of the response (calls only). */
  output?: string;
  /** The resolved message types, for comparing protocols (refinement). */
  inputType: RType;
  outputType?: RType;
  symbol: string;
  decl: Operation;
}

export interface ProtocolInfo {
  entry: DeclEntry;
  ops: Map<string, OpInfo>;
  order?: OrderExpr;
  /** Schemas of anonymous message types, by their synthetic names (`<protocol>.<op>.input`). */
  inline: Map<string, MessageSchema>;
  /** Named types the operations' schemas refer to. */
  refs: Set<DeclEntry>;
}

export class Protocols {
  private readonly infos = new Map<DeclEntry, ProtocolInfo>();

  constructor(
    private readonly ctx: Ctx,
    private readonly types: Types,
  ) {}

  /** Takes over an earlier compile's checked protocols that `keep` accepts (incremental.ts). */
  adopt(prior: Protocols, keep: (e: DeclEntry) => boolean): void {
    // forEach, not for-of: the language server runs this once per edit over every protocol of the workspace,
    // and for-of makes an iterator result and an entry array per entry until V8 optimises the function
    // (the first edits after the server starts), which are collected inside the compile.
    prior.infos.forEach((info, e) => {
      if (keep(e)) this.infos.set(e, info);
    });
  }

  checkAll(): void {
    // forEach for the reason given in adopt.
    this.ctx.modules.forEach((m) =>
      m.decls.forEach((e) => {
        if (e.kind === 'protocol') this.get(e);
      }),
    );
  }

  get(e: DeclEntry): ProtocolInfo {
    let info = this.infos.get(e);
    if (info) return info;
    const d = e.decl as ProtocolDecl;
    const m = e.module;
    info = { entry: e, ops: new Map(), inline: new Map(), refs: new Set() };
    this.infos.set(e, info);
    for (const op of d.ops) {
      const name = op.name.name;
      if (!name) continue;
      const prev = info.ops.get(name);
      if (prev) {
        this.ctx.report(Codes.DuplicateOperation, `operation \`${name}\` is declared twice in protocol \`${e.name}\``, m.file, op.name.span, {
          hint: 'rename or remove one of them',
          related: [related(m.file, prev.decl.name.span, 'first declared here')],
        });
        continue;
      }
      const signature = () => {
        const sig = m.text.slice(op.span.start, op.span.end).replace(/\s+/g, ' ');
        return sig.length > 100 ? sig.slice(0, 97) + '...' : sig;
      };
      const symbol = this.ctx.declare('operation', m.file, `${e.name}.${name}`, op.name, op.span, `${e.qname}.${name}`, signature, op.doc, e.symbol);
      const input = this.message(info, op.input, m, `${name}.input`, symbol);
      const out: OpInfo = { name, kind: op.opKind, input: input.name, inputType: input.type, symbol, decl: op };
      if (op.opKind === 'call') {
        const output = this.message(info, op.output, m, `${name}.output`, symbol);
        out.output = output.name;
        out.outputType = output.type;
      }
      info.ops.set(name, out);
    }
    if (d.order) {
      let ok = true;
      const stack: OrderExpr[] = [d.order];
      while (stack.length) {
        const x = stack.pop()!;
        if (x.kind === 'OrderOp') {
          const op = info.ops.get(x.name.name);
          if (op) this.ctx.reference(m.file, x.name.span, op.symbol);
          else if (x.name.name) {
            ok = false;
            this.ctx.report(Codes.UnknownOrderOperation, `\`order\` names \`${x.name.name}\`, which is not an operation of \`${e.name}\``, m.file, x.name.span, {
              hint: didYouMean(x.name.name, info.ops.keys()) ?? `the operations are ${[...info.ops.keys()].map((n) => `\`${n}\``).join(', ') || 'none'}`,
            });
          }
        } else if (x.kind === 'OrderSeq') stack.push(...x.items);
        else if (x.kind === 'OrderAlt') stack.push(...x.options);
        else if (x.kind === 'OrderRepeat') stack.push(x.expr);
      }
      if (ok) {
        const dfa = compileOrder(d.order, [...info.ops.keys()]);
        if (!dfa) {
          this.ctx.report(Codes.OrderAcceptsNothing, `the order of \`${e.name}\` is too complex to check`, m.file, d.order.span, { hint: 'simplify the expression' });
        } else if (dfa.accepting.length === 0) {
          this.ctx.report(Codes.OrderAcceptsNothing, `the order of \`${e.name}\` accepts no sequence of operations`, m.file, d.order.span, { hint: 'check the expression' });
        } else info.order = d.order;
      }
    }
    return info;
  }

  /** Schema name of an operation's message; anonymous types get `<protocol>.<op>.input|output`. */
  private message(info: ProtocolInfo, t: TypeExpr | undefined, m: Module, suffix: string, opSymbol: string): { name: string; type: RType } {
    const e = info.entry;
    if (t && t.kind === 'NamedType') {
      const r = this.types.check(t, m);
      if (r.k === 'named') {
        info.refs.add(r.entry);
        return { name: r.entry.qname, type: r };
      }
      return { name: this.inlineSchema(info, r, suffix), type: r };
    }
    const r: RType = t ? this.types.check(t, m, { path: `${e.name}.${suffix}`, container: opSymbol, qname: `${e.qname}.${suffix}` }) : { k: 'record', fields: [] };
    return { name: this.inlineSchema(info, r, suffix), type: r };
  }

  private inlineSchema(info: ProtocolInfo, r: RType, suffix: string): string {
    const name = `${info.entry.qname}.${suffix}`;
    info.inline.set(name, this.types.schema(r, info.refs));
    return name;
  }
}
