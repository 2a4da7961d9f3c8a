// Call cycles: a cycle of channels that all carry `call` operations
// (A calls B calls ... calls A) can deadlock when every instance on it waits
// for the response of the next. Each cycle is reported once, as the shortest
// cycle through the smallest instance id of its strongly connected component.

import { Codes } from '@mcl/language';
import { addCheck, channelRef, KIND_CALL, describePath, pathSteps, relatedFor, report, type Context, type Counterexample } from './context';
import { channelGraph, shortestPath, stronglyConnected } from './graph';

/** Cycles reported one by one at most; the summary still counts them all. */
const MAX_REPORTED = 50;

export function checkCallCycles(ctx: Context): void {
  const g = ctx.graph;
  const calls = channelGraph(g.ids, g.index, ctx.channelFrom, ctx.channelTo, new Int32Array(0), (k) => (ctx.channelKinds[k] & KIND_CALL) !== 0);
  const { comp, count } = stronglyConnected(calls, g.n);
  const size = new Int32Array(count);
  const smallest = new Int32Array(count).fill(-1);
  for (let v = 0; v < g.n; v++) {
    size[comp[v]]++;
    if (smallest[comp[v]] === -1) smallest[comp[v]] = v;
  }
  const selfLoop = new Uint8Array(count);
  for (let u = 0; u < g.n; u++) {
    for (let i = calls.start[u]; i < calls.start[u + 1]; i++) if (calls.to[i] === u) selfLoop[comp[u]] = 1;
  }
  // Components in the order of their smallest instance id.
  const cyclic: number[] = [];
  for (let c = 0; c < count; c++) if (size[c] > 1 || selfLoop[c]) cyclic.push(c);
  cyclic.sort((a, b) => smallest[a] - smallest[b]);
  let first: Counterexample | undefined;
  const targets = new Uint8Array(g.n + 1);
  for (const c of cyclic.slice(0, MAX_REPORTED)) {
    const s = smallest[c];
    targets[s] = 1;
    // The shortest way back to s never leaves its component, so no blocking is needed.
    const path = shortestPath(calls, [s], { targets });
    targets[s] = 0;
    if (!path) continue;
    const steps = pathSteps(ctx, path);
    first ??= steps;
    const firstChannel = steps.find((st) => st.channel !== undefined)?.channel ?? '';
    const at = channelRef(ctx, firstChannel);
    report(ctx, {
      code: Codes.CallCycle,
      message: `These instances call each other in a cycle and can deadlock: ${describePath(steps)}.`,
      file: at.file,
      span: at.span,
      hint: 'Break the cycle: turn one direction into `send`/`notify` operations, or restrict a channel with `allow` so that it carries no `call`.',
      related: relatedFor(ctx, steps),
    });
  }
  addCheck(ctx, {
    id: 'call-cycles',
    kind: 'call-cycles',
    status: cyclic.length === 0 ? 'pass' : 'fail',
    summary:
      cyclic.length === 0
        ? 'No cycle of call channels: calls cannot deadlock by waiting on each other.'
        : `${cyclic.length} cycle${cyclic.length === 1 ? '' : 's'} of call channels${cyclic.length > MAX_REPORTED ? ` (the first ${MAX_REPORTED} are reported)` : ''}; the first: ${first ? describePath(first) : ''}.`,
    counterexample: first,
  });
}
