// Shared state of one policy check run: the normalised input, the channel
// graph, and the collectors for checks and diagnostics, with the helpers that
// turn a path in the graph into a counterexample and related locations.

import { makeDiagnostic, type Diagnostic, type DiagnosticExtra, type DiagnosticInfo, type RelatedLocation, type Span } from '@mcl/language';
import type { PlanChannel, PlanCheck, PlanEgress, PlanExposure, PlanInstance } from '@mcl/plan';
import { channelGraph, compareStrings, indexInstances, type Graph, type Path } from './graph';
import type { PolicyInput, SourceRef } from './types';

export type Counterexample = NonNullable<PlanCheck['counterexample']>;
export type CounterStep = Counterexample[number];

export interface Context {
  input: PolicyInput;
  /** Instances in id order (node i is instances[i]). */
  instances: PlanInstance[];
  /** Channels in id order (edge labels index into this list). */
  channels: PlanChannel[];
  /** Exposures in host-port order. */
  exposures: PlanExposure[];
  /** Egresses in name order. */
  egresses: PlanEgress[];
  graph: Graph;
  /** Node of each channel's requiring and providing instance (by channel index), -1 when not in the plan. */
  channelFrom: Int32Array;
  channelTo: Int32Array;
  /** Operation kinds of each channel: bit 1 call, 2 send, 4 notify. */
  channelKinds: Uint8Array;
  /** Node of each exposure's instance, -1 when not in the plan. */
  exposureTo: Int32Array;
  checks: PlanCheck[];
  diagnostics: Diagnostic[];
}

export function createContext(input: PolicyInput): Context {
  const { ids, index } = indexInstances(input.instances ?? []);
  // Duplicated ids would be a planner bug; the first instance of an id wins.
  const byId = new Map<string, PlanInstance>();
  for (const inst of input.instances ?? []) if (!byId.has(inst.id)) byId.set(inst.id, inst);
  const instances = ids.map((id) => byId.get(id)!);
  const given = input.channels ?? [];
  let channels = given;
  for (let i = 1; i < given.length; i++) {
    if (!(given[i - 1].id < given[i].id)) {
      channels = [...given].sort((a, b) => compareStrings(a.id, b.id));
      break;
    }
  }
  const exposures = [...(input.exposures ?? [])].sort(
    (a, b) => a.host_port - b.host_port || compareStrings(a.instance, b.instance) || compareStrings(a.port, b.port),
  );
  const channelFrom = new Int32Array(channels.length);
  const channelTo = new Int32Array(channels.length);
  const channelKinds = new Uint8Array(channels.length);
  channels.forEach((c, k) => {
    channelFrom[k] = index.get(c.from.instance) ?? -1;
    channelTo[k] = index.get(c.to.instance) ?? -1;
    let kinds = 0;
    for (const op of c.ops ?? []) kinds |= op.kind === 'call' ? KIND_CALL : op.kind === 'send' ? KIND_SEND : op.kind === 'notify' ? KIND_NOTIFY : 0;
    channelKinds[k] = kinds;
  });
  const exposureTo = new Int32Array(exposures.map((x) => index.get(x.instance) ?? -1));
  const graph = channelGraph(ids, index, channelFrom, channelTo, exposureTo);
  const egresses = [...(input.egresses ?? [])].sort((a, b) => compareStrings(a.name, b.name));
  return { input, instances, channels, exposures, egresses, graph, channelFrom, channelTo, channelKinds, exposureTo, checks: [], diagnostics: [] };
}

export const KIND_CALL = 1;
export const KIND_SEND = 2;
export const KIND_NOTIFY = 4;

export function exposureNote(x: PlanExposure): string {
  return `outside, through tcp ${x.host_port} -> ${x.instance}.${x.port}`;
}

/** The counterexample of a path: alternating instances and channels, `outside` as a note. */
export function pathSteps(ctx: Context, path: Path): Counterexample {
  const out: Counterexample = [];
  const n = ctx.graph.n;
  if (path.start === n) {
    // The first step must then be an exposure; its note names the host port.
    const first = path.steps[0];
    out.push({ note: first && first.edge < 0 ? exposureNote(ctx.exposures[-first.edge - 1]) : 'outside' });
  } else {
    out.push({ instance: ctx.graph.ids[path.start] });
  }
  for (const step of path.steps) {
    if (step.edge >= 0) out.push({ channel: ctx.channels[step.edge].id });
    out.push({ instance: ctx.graph.ids[step.node] });
  }
  return out;
}

/** Related locations for every instance, channel and exposure of a counterexample that has a known declaration. */
export function relatedFor(ctx: Context, steps: Counterexample): RelatedLocation[] {
  const origins = ctx.input.origins ?? { instances: {}, channels: {}, exposures: {}, labels: {} };
  const related: RelatedLocation[] = [];
  for (const step of steps) {
    if (step.instance !== undefined) {
      const ref = origins.instances?.[step.instance];
      if (ref) related.push({ file: ref.file, span: ref.span, message: `instance \`${step.instance}\`${step.note ? ` (${step.note})` : ''}` });
    } else if (step.channel !== undefined) {
      const ref = origins.channels?.[step.channel];
      if (ref) related.push({ file: ref.file, span: ref.span, message: `channel \`${step.channel}\`${step.note ? ` (${step.note})` : ''}` });
    } else if (step.note !== undefined) {
      const port = /tcp (\d+)/.exec(step.note)?.[1];
      const ref = port !== undefined ? origins.exposures?.[port] : undefined;
      if (ref) related.push({ file: ref.file, span: ref.span, message: step.note });
    }
  }
  return related;
}

/** Human-readable chain `a -> b -> c` for messages. */
export function describePath(steps: Counterexample): string {
  return steps
    .filter((s) => s.instance !== undefined || (s.channel === undefined && s.note !== undefined))
    .map((s) => s.instance ?? 'outside')
    .join(' -> ');
}

/** A policy diagnostic: its registry entry (`Codes.X`), what, where, and how to fix it. */
export interface DiagnosticSpec extends DiagnosticExtra {
  code: DiagnosticInfo;
  message: string;
  file: string;
  span: Span;
}

export function report(ctx: Context, spec: DiagnosticSpec): void {
  ctx.diagnostics.push(makeDiagnostic(spec.code, spec.message, spec.file, spec.span, spec));
}

export function addCheck(ctx: Context, check: PlanCheck): void {
  ctx.checks.push(check);
}

const NOWHERE: SourceRef = { file: '', span: { start: 0, end: 0 } };

/** Where an instance's label was given, else where the instance was declared. */
export function instanceRef(ctx: Context, id: string, preferLabel: boolean): SourceRef {
  const o = ctx.input.origins;
  return (preferLabel ? o?.labels?.[id] : undefined) ?? o?.instances?.[id] ?? o?.target ?? NOWHERE;
}

export function channelRef(ctx: Context, id: string): SourceRef {
  const o = ctx.input.origins;
  return o?.channels?.[id] ?? NOWHERE;
}

export function targetRef(ctx: Context): SourceRef {
  return ctx.input.origins?.target ?? NOWHERE;
}
