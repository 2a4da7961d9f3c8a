// Reachability rules: `x only from a, b`, `x only through a`, `no path a -> b`,
// and the exposure rule `exposed only [...]`, plus the `wiring` and `exposure`
// summary checks. spec/policy.md gives the precise semantics.

import type { ExposedOnlyRule, Ident, NoPathRule, OnlyRule } from '@mcl/language';
import { Codes } from '@mcl/language';
import type { PlanExposure } from '@mcl/plan';
import {
  addCheck,
  describePath,
  exposureNote,
  pathSteps,
  relatedFor,
  report,
  type Context,
  type Counterexample,
} from './context';
import { compareStrings, shortestPath, stronglyConnected } from './graph';
import { nodesOf, OUTSIDE, qualify, resolveName, suggest, namesInScope, type Resolved } from './names';
import type { ScopedRule } from './types';

/**
 * Resolves a name of a rule, reporting MCL0515 (unknown, with suggestions and
 * a quick fix) or MCL0518 (`outside` where it has no meaning).
 */
export function resolveOrReport(ctx: Context, sr: ScopedRule, ident: Ident, allowOutside: boolean): Resolved | undefined {
  const name = ident.name;
  const resolved = resolveName(ctx.graph, sr.scope, name, allowOutside);
  if (resolved) return resolved;
  if (name === OUTSIDE && nodesOf(ctx.graph, qualify(sr.scope, name)).length === 0) {
    report(ctx, {
      code: Codes.OutsideNotAllowed,
      message: '`outside` cannot be used here: nothing can reach the outside, and it has no channels of its own.',
      file: sr.file,
      span: ident.span,
      hint: 'Use `outside` only as the start of `no path`, in the list of `only from`/`only through`, or as the target of `no flow`.',
    });
    return undefined;
  }
  // The parser already reported a missing name; a second diagnostic would only repeat it.
  if (name === '' || ident.parts?.some((p) => p.name === '')) return undefined;
  if (ident.parts && ident.parts.length > 1) {
    reportBadSegment(ctx, sr, ident.parts);
    return undefined;
  }
  const where = sr.scope === '' ? 'the root system' : `system \`${sr.scope}\``;
  const candidates = namesInScope(ctx.graph.ids, sr.scope);
  const close = suggest(name, candidates);
  report(ctx, {
    code: Codes.UnknownRuleSubject,
    message: `\`${name}\` is not an instance or nested system of ${where}.`,
    file: sr.file,
    span: ident.span,
    hint:
      close.length > 0
        ? `Did you mean ${close.map((c) => `\`${c}\``).join(', ')}?`
        : candidates.length > 0
          ? `Use one of the names declared in ${where}: ${candidates.slice(0, 8).map((c) => `\`${c}\``).join(', ')}${candidates.length > 8 ? ', ...' : ''}.`
          : `Declare the instance in ${where} first.`,
    fixes: close.map((c) => ({ title: `Change to \`${c}\``, edits: [{ file: sr.file, span: ident.span, newText: c }] })),
  });
  return undefined;
}

/**
 * Reports a dotted path (`farm.web`) that names nothing at its first segment
 * that does not exist: the segments before it lead into nested systems, so the
 * error and its suggestions are about the system the bad segment is looked up in.
 */
function reportBadSegment(ctx: Context, sr: ScopedRule, parts: readonly Ident[]): void {
  let k = 0;
  let prefix = sr.scope;
  while (k < parts.length && nodesOf(ctx.graph, qualify(prefix, parts[k].name)).length > 0) {
    prefix = qualify(prefix, parts[k].name);
    k++;
  }
  // The whole path resolves only when resolveName succeeded; k < parts.length here.
  const bad = parts[Math.min(k, parts.length - 1)];
  const where = prefix === '' ? 'the root system' : `system \`${prefix}\``;
  const written = parts.slice(0, k).map((p) => p.name).join('.');
  if (k > 0 && ctx.graph.index.has(prefix)) {
    report(ctx, {
      code: Codes.UnknownRuleSubject,
      message: `\`${written}\` is a component instance, not a nested system: there is nothing named \`${bad.name}\` inside it.`,
      file: sr.file,
      span: { start: parts[k - 1].span.end, end: parts[parts.length - 1].span.end },
      hint: `Name the instance itself: \`${written}\`.`,
      fixes: [{ title: `Change to \`${written}\``, edits: [{ file: sr.file, span: { start: parts[0].span.start, end: parts[parts.length - 1].span.end }, newText: written }] }],
    });
    return;
  }
  const candidates = namesInScope(ctx.graph.ids, prefix);
  const close = suggest(bad.name, candidates);
  report(ctx, {
    code: Codes.UnknownRuleSubject,
    message: k === 0 ? `\`${bad.name}\` is not an instance or nested system of ${where}.` : `${where} has no instance or nested system \`${bad.name}\`.`,
    file: sr.file,
    span: bad.span,
    hint:
      close.length > 0
        ? `Did you mean ${close.map((c) => `\`${c}\``).join(', ')}?`
        : candidates.length > 0
          ? `Use one of the names declared in ${where}: ${candidates.slice(0, 8).map((c) => `\`${c}\``).join(', ')}${candidates.length > 8 ? ', ...' : ''}.`
          : `Declare the instance in ${where} first.`,
    fixes: close.map((c) => ({ title: `Change to \`${c}\``, edits: [{ file: sr.file, span: bad.span, newText: c }] })),
  });
}

function displayName(sr: ScopedRule, ident: Ident): string {
  return ident.name === OUTSIDE ? OUTSIDE : qualify(sr.scope, ident.name);
}

function unresolvedCheck(ctx: Context, id: string, kind: 'reachability' | 'exposure', what: string): void {
  addCheck(ctx, { id, kind, status: 'fail', summary: `${what} could not be checked: it names something that does not exist.` });
}

export function markNodes(size: number, nodes: readonly number[]): Uint8Array {
  const set = new Uint8Array(size);
  for (const v of nodes) set[v] = 1;
  return set;
}

export function checkOnly(ctx: Context, sr: ScopedRule, rule: OnlyRule): void {
  const sourcesText = rule.sources.map((s) => displayName(sr, s)).join(',');
  const id = `reach:${displayName(sr, rule.target)}-only-${rule.mode}:${sourcesText}`;
  const ruleText = `\`${rule.target.name} only ${rule.mode} ${rule.sources.map((s) => s.name).join(', ')}\``;
  const target = resolveOrReport(ctx, sr, rule.target, false);
  const sources = rule.sources.map((s) => resolveOrReport(ctx, sr, s, true));
  if (!target || sources.some((s) => s === undefined)) {
    unresolvedCheck(ctx, id, 'reachability', `Rule ${ruleText}`);
    return;
  }
  const resolvedSources = sources as Resolved[];
  if (rule.mode === 'from') checkOnlyFrom(ctx, sr, rule, id, ruleText, target, resolvedSources);
  else checkOnlyThrough(ctx, sr, rule, id, ruleText, target, resolvedSources);
}

function checkOnlyFrom(
  ctx: Context,
  sr: ScopedRule,
  rule: OnlyRule,
  id: string,
  ruleText: string,
  target: Resolved,
  sources: Resolved[],
): void {
  const g = ctx.graph;
  // Sets rather than masks over the whole graph, and only the channels into the target: a workspace
  // with a rule in every module checked each rule against every channel of the composition.
  const inTarget = new Set(target.nodes);
  const allowed = new Set(sources.flatMap((s) => s.nodes));
  const allowedNames = sources.map((s) => `\`${s.id}\``).join(', ');
  let first: Counterexample | undefined;
  let violations = 0;
  // Channels in id order, then exposures in host-port order: the first one is the check's counterexample.
  const offending: { steps: Counterexample; what: string; from: string }[] = [];
  const into = channelsInto(ctx);
  const candidates: number[] = [];
  for (const v of inTarget) {
    const l = into.get(v);
    if (l) for (const k of l) candidates.push(k);
  }
  candidates.sort((a, b) => a - b);
  for (const k of candidates) {
    const from = ctx.channelFrom[k];
    if (from < 0 || inTarget.has(from) || allowed.has(from)) continue;
    const c = ctx.channels[k];
    offending.push({
      steps: [{ instance: c.from.instance }, { channel: c.id }, { instance: c.to.instance }],
      what: `channel \`${c.id}\` comes from \`${c.from.instance}\``,
      from: c.from.instance,
    });
  }
  if (!allowed.has(g.n)) {
    for (const [k, x] of ctx.exposures.entries()) {
      const to = ctx.exposureTo[k];
      if (to < 0 || !inTarget.has(to)) continue;
      offending.push({
        steps: [{ note: exposureNote(x) }, { instance: x.instance }],
        what: `\`${x.instance}.${x.port}\` is exposed on tcp ${x.host_port}, so it accepts connections from outside`,
        from: OUTSIDE,
      });
    }
  }
  for (const o of offending) {
    violations++;
    first ??= o.steps;
    report(ctx, {
      code: Codes.OnlyFromViolated,
      message: `${ruleText} is violated: ${o.what}, which is not in the list.`,
      file: sr.file,
      span: rule.span,
      hint:
        o.from === OUTSIDE
          ? `Remove the exposure, or add \`outside\` to the list if \`${target.id}\` is meant to face the outside.`
          : `Remove the connection, route it through ${allowedNames}, or add \`${o.from}\` to the list.`,
      related: relatedFor(ctx, o.steps),
    });
  }
  if (violations === 0) {
    addCheck(ctx, { id, kind: 'reachability', status: 'pass', summary: `Every channel into \`${target.id}\` comes from ${allowedNames}.` });
  } else {
    addCheck(ctx, {
      id,
      kind: 'reachability',
      status: 'fail',
      summary: `${violations} connection${violations === 1 ? '' : 's'} into \`${target.id}\` from outside ${allowedNames}.`,
      counterexample: first,
    });
  }
}

/** The channels (their indices, ascending) into each instance of the graph. Computed once per run. */
const intoCache = new WeakMap<Context, Map<number, number[]>>();
function channelsInto(ctx: Context): Map<number, number[]> {
  let into = intoCache.get(ctx);
  if (into) return into;
  into = new Map();
  for (let k = 0; k < ctx.channels.length; k++) {
    const to = ctx.channelTo[k];
    if (to < 0) continue;
    const l = into.get(to);
    if (l) l.push(k);
    else into.set(to, [k]);
  }
  intoCache.set(ctx, into);
  return into;
}

/**
 * The entry instances of the graph: the instances of source strongly
 * connected components (no channel from another component and no exposure
 * leads into them, so they act on their own initiative). Together with
 * `outside` they are where paths start. Computed once per run.
 */
const rootsCache = new WeakMap<Context, number[]>();
export function entryInstances(ctx: Context): number[] {
  const cached = rootsCache.get(ctx);
  if (cached) return cached;
  const g = ctx.graph;
  const { comp, count } = stronglyConnected(g, g.n);
  const entered = new Uint8Array(count);
  // Exposed instances are entered from outside, which is searched from anyway.
  for (let i = g.start[g.n]; i < g.start[g.n + 1]; i++) entered[comp[g.to[i]]] = 1;
  for (let u = 0; u < g.n; u++) {
    for (let i = g.start[u]; i < g.start[u + 1]; i++) {
      const v = g.to[i];
      if (comp[v] !== comp[u]) entered[comp[v]] = 1;
    }
  }
  const roots: number[] = [];
  for (let v = 0; v < g.n; v++) if (!entered[comp[v]]) roots.push(v);
  rootsCache.set(ctx, roots);
  return roots;
}

function checkOnlyThrough(
  ctx: Context,
  sr: ScopedRule,
  rule: OnlyRule,
  id: string,
  ruleText: string,
  target: Resolved,
  sources: Resolved[],
): void {
  const g = ctx.graph;
  const size = g.n + 1;
  const inTarget = markNodes(size, target.nodes);
  const blocked = markNodes(size, sources.flatMap((s) => s.nodes));
  const starts: number[] = [];
  if (!blocked[g.n]) starts.push(g.n);
  for (const r of entryInstances(ctx)) if (!blocked[r] && !inTarget[r]) starts.push(r);
  const path = shortestPath(g, starts, { blocked, targets: inTarget });
  const through = sources.map((s) => `\`${s.id}\``).join(', ');
  if (!path) {
    addCheck(ctx, {
      id,
      kind: 'reachability',
      status: 'pass',
      summary: `Every path into \`${target.id}\`, from outside or from any entry instance, passes through ${through}.`,
    });
    return;
  }
  const steps = pathSteps(ctx, path);
  addCheck(ctx, {
    id,
    kind: 'reachability',
    status: 'fail',
    summary: `A path reaches \`${target.id}\` without passing through ${through}: ${describePath(steps)}.`,
    counterexample: steps,
  });
  report(ctx, {
    code: Codes.OnlyThroughBypassed,
    message: `${ruleText} is violated: the path ${describePath(steps)} reaches \`${target.id}\` without passing through ${through}.`,
    file: sr.file,
    span: rule.span,
    hint: `Connect the path's last hop to ${through} instead, or remove it.`,
    related: relatedFor(ctx, steps),
  });
}

export function checkNoPath(ctx: Context, sr: ScopedRule, rule: NoPathRule): void {
  const id = `reach:no-path:${displayName(sr, rule.from)}->${displayName(sr, rule.to)}`;
  const ruleText = `\`no path ${rule.from.name} -> ${rule.to.name}\``;
  const from = resolveOrReport(ctx, sr, rule.from, true);
  const to = resolveOrReport(ctx, sr, rule.to, false);
  if (!from || !to) {
    unresolvedCheck(ctx, id, 'reachability', `Rule ${ruleText}`);
    return;
  }
  const g = ctx.graph;
  const path = shortestPath(g, from.nodes, { targets: markNodes(g.n + 1, to.nodes) });
  if (!path) {
    addCheck(ctx, { id, kind: 'reachability', status: 'pass', summary: `No chain of channels leads from \`${from.id}\` to \`${to.id}\`.` });
    return;
  }
  const steps = pathSteps(ctx, path);
  addCheck(ctx, {
    id,
    kind: 'reachability',
    status: 'fail',
    summary: `\`${from.id}\` reaches \`${to.id}\`: ${describePath(steps)}.`,
    counterexample: steps,
  });
  report(ctx, {
    code: Codes.NoPathViolated,
    message: `${ruleText} is violated: ${describePath(steps)}.`,
    file: sr.file,
    span: rule.span,
    hint: 'Remove one of the connections on the path (every step is listed below).',
    related: relatedFor(ctx, steps),
  });
}

function exposureKey(instance: string, port: string): string {
  return `${instance}\u0000${port}`;
}

function inScope(scope: string, instance: string): boolean {
  return scope === '' || instance === scope || instance.startsWith(`${scope}.`);
}

export function checkExposedOnly(ctx: Context, sr: ScopedRule, rule: ExposedOnlyRule): void {
  const id = `exposure:exposed-only${sr.scope === '' ? '' : `:${sr.scope}`}`;
  // Every entry resolves to one component port: an instance's own port, or the
  // port a nested system's export leads to (rules name a subsystem's ports by
  // export, as `connect` and `expose` do, never by the inner ports' names).
  const exact = new Set<string>();
  const listed: { instance: string; port: string; name: string; ref: ExposedOnlyRule['ports'][number] }[] = [];
  const exports = ctx.input.exports ?? {};
  let unresolved = false;
  const unknownPort = (what: string, owner: string, ref: ExposedOnlyRule['ports'][number], ports: string[]): void => {
    const close = suggest(ref.port.name, ports);
    report(ctx, {
      code: Codes.UnknownExposedOnlyPort,
      message: `${what} \`${owner}\` has no port \`${ref.port.name}\`.`,
      file: sr.file,
      span: ref.port.span,
      hint:
        close.length > 0
          ? `Did you mean ${close.map((c) => `\`${c}\``).join(', ')}?`
          : `Its ports are ${ports.map((p) => `\`${p}\``).join(', ') || 'none'}${what === 'System' ? ' (a system has only the ports it exports)' : ''}.`,
      fixes: close.map((c) => ({ title: `Change to \`${c}\``, edits: [{ file: sr.file, span: ref.port.span, newText: c }] })),
    });
    unresolved = true;
  };
  for (const ref of rule.ports) {
    const inst = resolveOrReport(ctx, sr, ref.instance, false);
    if (!inst) {
      unresolved = true;
      continue;
    }
    const node = ctx.graph.index.get(inst.id);
    if (node === undefined) {
      // A nested system: the entry names one of its exports.
      if (ref.port.name === '') {
        unresolved = true;
        continue;
      }
      const inner = exports[`${inst.id}.${ref.port.name}`];
      if (!inner) {
        const prefix = `${inst.id}.`;
        const names = Object.keys(exports)
          .filter((k) => k.startsWith(prefix) && !k.slice(prefix.length).includes('.'))
          .map((k) => k.slice(prefix.length))
          .sort(compareStrings);
        unknownPort('System', inst.id, ref, names);
        continue;
      }
      exact.add(exposureKey(inner.instance, inner.port));
      listed.push({ instance: inner.instance, port: inner.port, name: `${inst.id}.${ref.port.name}`, ref });
      continue;
    }
    const ports = (ctx.instances[node].ports ?? []).map((p) => p.name);
    if (ref.port.name !== '' && !ports.includes(ref.port.name)) {
      unknownPort('Instance', inst.id, ref, ports);
      continue;
    }
    exact.add(exposureKey(inst.id, ref.port.name));
    listed.push({ instance: inst.id, port: ref.port.name, name: `${inst.id}.${ref.port.name}`, ref });
  }
  const inRule = ctx.exposures.filter((x) => inScope(sr.scope, x.instance));
  const extra = inRule.filter((x) => !exact.has(exposureKey(x.instance, x.port)));
  const listText = `[${rule.ports.map((p) => `${p.instance.name}.${p.port.name}`).join(', ')}]`;
  // With an unresolved entry the list is not what the author meant, so only the entry itself is reported.
  for (const x of unresolved ? [] : extra) {
    const steps: Counterexample = [{ note: exposureNote(x) }, { instance: x.instance }];
    report(ctx, {
      code: Codes.ExposureNotListed,
      message: `\`${x.instance}.${x.port}\` is exposed on tcp ${x.host_port}, but \`exposed only ${listText}\` does not list it.`,
      file: sr.file,
      span: rule.span,
      hint: exposedOnlyHint(ctx, sr.scope, x),
      related: relatedFor(ctx, steps),
    });
  }
  // A listed port that is not exposed is harmless but usually a stale entry.
  for (const l of listed) {
    const used = inRule.some((x) => x.instance === l.instance && x.port === l.port);
    if (used) continue;
    report(ctx, {
      code: Codes.ListedPortNotExposed,
      message: `\`${l.name}\` is listed in \`exposed only\` but is not exposed.`,
      file: sr.file,
      span: l.ref.span,
      hint: 'Remove the entry, or expose the port if it is meant to face the outside.',
    });
  }
  if (unresolved) {
    unresolvedCheck(ctx, id, 'exposure', `Rule \`exposed only ${listText}\``);
    return;
  }
  if (extra.length === 0) {
    addCheck(ctx, {
      id,
      kind: 'exposure',
      status: 'pass',
      summary:
        inRule.length === 0
          ? `Nothing${sr.scope === '' ? '' : ` in \`${sr.scope}\``} is exposed.`
          : `Exposed: ${inRule.map((x) => `${x.instance}.${x.port} on tcp ${x.host_port}`).join(', ')}; all listed.`,
    });
    return;
  }
  addCheck(ctx, {
    id,
    kind: 'exposure',
    status: 'fail',
    summary: `${extra.length} exposure${extra.length === 1 ? '' : 's'} not in the list: ${extra.map((x) => `${x.instance}.${x.port} on tcp ${x.host_port}`).join(', ')}.`,
    counterexample: extra.map((x) => ({ instance: x.instance, note: `${x.port} exposed on tcp ${x.host_port}` })),
  });
}

/**
 * How to allow an exposure the list misses: by the name the rule's scope
 * sees it under. An exposure below a nested system is listed by the export
 * that leads to it; when no export does, the nested system exposes a port it
 * keeps to itself, which the rule cannot allow by name.
 */
function exposedOnlyHint(ctx: Context, scope: string, x: PlanExposure): string {
  const prefix = scope === '' ? '' : `${scope}.`;
  const rest = x.instance.slice(prefix.length);
  if (!rest.includes('.')) return `Remove the exposure of \`${x.instance}.${x.port}\`, or add it to the list.`;
  // The outermost export of the scope's direct child that leads to this port.
  const child = `${prefix}${rest.slice(0, rest.indexOf('.'))}`;
  const exports = ctx.input.exports ?? {};
  const via = Object.keys(exports)
    .filter((k) => k.startsWith(`${child}.`) && !k.slice(child.length + 1).includes('.') && exports[k].instance === x.instance && exports[k].port === x.port)
    .sort(compareStrings)[0];
  if (via !== undefined) return `Remove the exposure of \`${x.instance}.${x.port}\`, or add \`${via.slice(prefix.length)}\` to the list.`;
  return `Remove the exposure of \`${x.instance}.${x.port}\`, or export the port from \`${child.slice(prefix.length)}\` and list the export.`;
}

/** The `wiring` summary: what the graph looks like, so the plan records that it was checked. */
export function wiringSummary(ctx: Context): void {
  const g = ctx.graph;
  const skipped = ctx.channels.filter((_, k) => ctx.channelFrom[k] < 0 || ctx.channelTo[k] < 0);
  const degree = new Uint8Array(g.n);
  for (let k = 0; k < ctx.channels.length; k++) {
    if (ctx.channelFrom[k] >= 0) degree[ctx.channelFrom[k]] = 1;
    if (ctx.channelTo[k] >= 0) degree[ctx.channelTo[k]] = 1;
  }
  for (const v of ctx.exposureTo) if (v >= 0) degree[v] = 1;
  let isolated = 0;
  for (let v = 0; v < g.n; v++) if (!degree[v]) isolated++;
  const base =
    `${ctx.channels.length - skipped.length} channel${ctx.channels.length - skipped.length === 1 ? '' : 's'} between ${g.n} instance${g.n === 1 ? '' : 's'}; ` +
    `every other pair is isolated (default deny)` +
    (isolated > 0 ? `; ${isolated} instance${isolated === 1 ? ' has' : 's have'} no channel and no exposure` : '') +
    '.';
  if (skipped.length === 0) {
    addCheck(ctx, { id: 'wiring', kind: 'wiring', status: 'pass', summary: base });
  } else {
    addCheck(ctx, {
      id: 'wiring',
      kind: 'wiring',
      status: 'warn',
      summary: `${base} ${skipped.length} channel${skipped.length === 1 ? '' : 's'} name an instance that is not in the plan and were left out of the checks.`,
      counterexample: skipped.map((c) => ({ channel: c.id, note: 'endpoint not in the plan' })),
    });
  }
}

/** The `exposure` summary: every host port relayed into the system. */
export function exposureSummary(ctx: Context): void {
  const list = ctx.exposures.map((x) => `tcp ${x.host_port} -> ${x.instance}.${x.port}`);
  addCheck(ctx, {
    id: 'exposure',
    kind: 'exposure',
    status: 'pass',
    summary:
      list.length === 0
        ? 'Nothing is exposed: no instance is reachable from outside.'
        : `${list.length} exposure${list.length === 1 ? '' : 's'}: ${list.join(', ')}.`,
  });
}
