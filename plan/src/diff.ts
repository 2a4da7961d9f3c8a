// What applying a plan would change, computed from the deployment state.
//
// An instance is replaced when its digest changes: the digest covers every
// field of the instance, and a backend forks a changed instance again rather
// than patching a running guest. `diffInstances` is that rule, the one both
// `mclc plan` (through `diffPlan`) and the backends' apply use, so what a plan
// shows and what apply does cannot disagree. An instance with the same digest is updated
// in place when only the broker's side of it changes (the operations or
// invariants of a channel on one of its ports); otherwise it is left alone.
// Reasons name the fields that changed, never their values, so they can be
// printed even when a sensitive parameter changed.
//
// Besides resources, the diff reports the change in security posture: the
// channels and exposures that appear or disappear, channel invariants that
// change, and instances whose information-flow label or declassification
// rights change.

import { canonicalJson } from './canonical';
import type { ChannelInvariants, DeploymentState, Plan, PlanChannel, PlanExposure, PlanInstance } from './types';

export type ChangeAction = 'create' | 'update' | 'replace' | 'delete' | 'no-op';

export interface InstanceChange {
  id: string;
  component: string;
  action: ChangeAction;
  /** Top-level fields of the instance that differ (e.g. `program`, `params.password`, `memory_bytes`), sorted. */
  changed_fields: string[];
  /** Sentences a person can read, e.g. "memory_bytes changed" or "digest changed". */
  reasons: string[];
}

export interface ChannelChange {
  id: string;
  protocol: string;
  from: string;
  to: string;
}

export interface ChannelInvariantChange {
  id: string;
  /** Invariant fields that changed, e.g. `rate`, `max_message_bytes`. */
  fields: string[];
  /** True when at least one change allows more than before (no rate limit, larger messages, any order). */
  loosened: boolean;
}

export interface ExposureChange {
  host_port: number;
  instance: string;
  port: string;
  protocol: string;
}

export interface LabelChange {
  instance: string;
  before: string | null;
  after: string | null;
}

export interface DeclassifyChange {
  instance: string;
  added: { from: string; to: string }[];
  removed: { from: string; to: string }[];
}

export interface SecurityPosture {
  channels_added: ChannelChange[];
  channels_removed: ChannelChange[];
  channels_changed: ChannelInvariantChange[];
  exposures_added: ExposureChange[];
  exposures_removed: ExposureChange[];
  labels_changed: LabelChange[];
  declassifications_changed: DeclassifyChange[];
  /** True when nothing above is non-empty. */
  unchanged: boolean;
}

export interface PlanChanges {
  /** Every instance of the plan and of the state, sorted by id. */
  instances: InstanceChange[];
  counts: { create: number; update: number; replace: number; delete: number; no_op: number };
  /** True when applying the plan would change anything (instances, channels or exposures). */
  has_changes: boolean;
  security: SecurityPosture;
  /** One line, e.g. "Plan: 3 to add, 1 to replace, 0 to destroy." or "No changes. ...". */
  summary: string;
}

export interface InstanceDiff {
  create: string[];
  replace: string[];
  delete: string[];
  keep: string[];
}

/**
 * Compares running instances (id -> digest) with the plan's: an instance not
 * running is created, one whose digest differs (or whose id is listed in
 * `forceReplace`) is replaced, one with the same digest is kept, and a
 * running one the plan lacks is deleted. Ids in `forceReplace` that are not
 * in the plan are returned as `unknown` for the caller to reject. Every list
 * is sorted.
 */
export function diffInstances(
  running: ReadonlyMap<string, string>,
  wanted: readonly PlanInstance[],
  forceReplace: readonly string[] = [],
): InstanceDiff & { unknown: string[] } {
  const force = new Set(forceReplace);
  const d: InstanceDiff & { unknown: string[] } = { create: [], replace: [], delete: [], keep: [], unknown: [] };
  const wantedIds = new Set<string>();
  for (const inst of wanted) {
    wantedIds.add(inst.id);
    const digest = running.get(inst.id);
    if (digest === undefined) d.create.push(inst.id);
    else if (digest !== inst.digest || force.has(inst.id)) d.replace.push(inst.id);
    else d.keep.push(inst.id);
  }
  for (const id of running.keys()) if (!wantedIds.has(id)) d.delete.push(id);
  for (const id of force) if (!wantedIds.has(id)) d.unknown.push(id);
  for (const list of Object.values(d)) list.sort();
  return d;
}

/** The items by id (the last of a repeated id), without an entry array for each. */
function byId<T extends { id: string }>(xs: readonly T[]): Map<string, T> {
  const m = new Map<string, T>();
  for (const x of xs) m.set(x.id, x);
  return m;
}
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The fields of two instances that differ, at the top level and one level into `params`. */
export function changedInstanceFields(before: PlanInstance, after: PlanInstance): string[] {
  const out: string[] = [];
  const a = before as unknown as Record<string, unknown>;
  const b = after as unknown as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => k !== 'digest' && k !== 'id').sort();
  for (const k of keys) {
    if (k === 'params') {
      const pa = (a.params ?? {}) as Record<string, unknown>;
      const pb = (b.params ?? {}) as Record<string, unknown>;
      for (const p of [...new Set([...Object.keys(pa), ...Object.keys(pb)])].sort()) {
        if (canonicalJson(pa[p] ?? null) !== canonicalJson(pb[p] ?? null) || p in pa !== p in pb) out.push(`params.${p}`);
      }
    } else if (canonicalJson(a[k] ?? null) !== canonicalJson(b[k] ?? null)) {
      out.push(k);
    }
  }
  return out;
}

function instanceChange(before: PlanInstance | undefined, after: PlanInstance | undefined, replaced: boolean, rewired: string[]): InstanceChange {
  if (!before) return { id: after!.id, component: after!.component, action: 'create', changed_fields: [], reasons: ['not in the deployment'] };
  if (!after) return { id: before.id, component: before.component, action: 'delete', changed_fields: [], reasons: ['not in the plan'] };
  if (replaced) {
    // The fields only explain the replacement; the digests decide it.
    const fields = changedInstanceFields(before, after);
    // An instance placed on another target moves: it is started there and stopped where it was.
    const reasons = fields.length ? fields.map((f) => (f === 'target' ? `moves from ${before.target ?? 'its host'} to ${after.target ?? 'its host'}` : `${f} changed`)) : ['digest changed'];
    return { id: after.id, component: after.component, action: 'replace', changed_fields: fields, reasons };
  }
  if (rewired.length) return { id: after.id, component: after.component, action: 'update', changed_fields: [], reasons: rewired };
  return { id: after.id, component: after.component, action: 'no-op', changed_fields: [], reasons: [] };
}

const channelChange = (c: PlanChannel): ChannelChange => ({
  id: c.id,
  protocol: c.protocol,
  from: `${c.from.instance}.${c.from.port}`,
  to: `${c.to.instance}.${c.to.port}`,
});

const exposureChange = (e: PlanExposure): ExposureChange => ({ host_port: e.host_port, instance: e.instance, port: e.port, protocol: e.protocol });

function invariantChange(id: string, a: ChannelInvariants, b: ChannelInvariants): ChannelInvariantChange | undefined {
  const fields: string[] = [];
  let loosened = false;
  if (a.max_message_bytes !== b.max_message_bytes) {
    fields.push('max_message_bytes');
    loosened ||= b.max_message_bytes > a.max_message_bytes;
  }
  if (canonicalJson(a.rate) !== canonicalJson(b.rate)) {
    fields.push('rate');
    loosened ||= b.rate === null || (a.rate !== null && (b.rate.per_second > a.rate.per_second || b.rate.burst > a.rate.burst));
  }
  if (a.timeout_ms !== b.timeout_ms) {
    fields.push('timeout_ms');
    loosened ||= b.timeout_ms > a.timeout_ms;
  }
  if (a.max_inflight !== b.max_inflight) {
    fields.push('max_inflight');
    loosened ||= b.max_inflight > a.max_inflight;
  }
  if (canonicalJson(a.order) !== canonicalJson(b.order)) {
    fields.push('order');
    loosened ||= b.order === null;
  }
  return fields.length ? { id, fields, loosened } : undefined;
}

function opsKey(c: PlanChannel): string {
  return canonicalJson(c.ops);
}

/** Compares the plan with what the state says is deployed (null: nothing deployed yet). */
export function diffPlan(state: DeploymentState | null, plan: Plan): PlanChanges {
  const before = byId(state?.instances ?? []);
  const after = byId(plan.instances);
  // With nothing deployed, the plan's ids are all there is (and are unique, as keys of `after`).
  const ids = (before.size ? [...new Set([...before.keys(), ...after.keys()])] : [...after.keys()]).sort(cmp);

  // Channels: an id names both endpoints, so the same id with other ops is a changed channel.
  const chBefore = byId(state?.channels ?? []);
  const chAfter = byId(plan.channels);
  const channels_added: ChannelChange[] = [];
  const channels_removed: ChannelChange[] = [];
  const channels_changed: ChannelInvariantChange[] = [];
  for (const c of plan.channels) {
    const old = chBefore.get(c.id);
    if (!old) channels_added.push(channelChange(c));
    else {
      const inv = invariantChange(c.id, old.invariants, c.invariants);
      const opsChanged = opsKey(old) !== opsKey(c) || old.protocol !== c.protocol;
      // A late binding's candidates: which one the port starts on, or whether it is one at all.
      const candidateChanged = canonicalJson(old.candidate ?? null) !== canonicalJson(c.candidate ?? null);
      if (inv || opsChanged || candidateChanged) {
        const fields = [...(opsChanged ? ['ops'] : []), ...(candidateChanged ? ['candidate'] : []), ...(inv?.fields ?? [])].sort();
        const gained = opsChanged && c.ops.some((op) => !old.ops.some((o) => o.name === op.name));
        channels_changed.push({ id: c.id, fields, loosened: (inv?.loosened ?? false) || gained });
      }
    }
  }
  for (const c of state?.channels ?? []) if (!chAfter.has(c.id)) channels_removed.push(channelChange(c));

  // Instances: a changed channel updates both of its ends in place.
  const rewired = new Map<string, string[]>();
  for (const c of channels_changed) {
    const ch = chAfter.get(c.id)!;
    for (const end of new Set([ch.from.instance, ch.to.instance])) {
      rewired.set(end, [...(rewired.get(end) ?? []), `channel ${c.id}: ${c.fields.join(', ')} changed`]);
    }
  }
  // Nothing deployed, nothing replaced (diffInstances would list, and sort, every instance as created).
  const replaced = new Set(before.size ? diffInstances(new Map([...before].map(([id, i]) => [id, i.digest])), plan.instances).replace : []);
  const instances = ids.map((id) => instanceChange(before.get(id), after.get(id), replaced.has(id), rewired.get(id) ?? []));
  const counts = { create: 0, update: 0, replace: 0, delete: 0, no_op: 0 };
  for (const c of instances) counts[c.action === 'no-op' ? 'no_op' : c.action]++;

  const expKey = (e: PlanExposure) => `${e.host_port}|${e.instance}|${e.port}|${e.protocol}`;
  const expBefore = new Map((state?.exposures ?? []).map((e) => [expKey(e), e]));
  const expAfter = new Map(plan.exposures.map((e) => [expKey(e), e]));
  const exposures_added = plan.exposures.filter((e) => !expBefore.has(expKey(e))).map(exposureChange);
  const exposures_removed = (state?.exposures ?? []).filter((e) => !expAfter.has(expKey(e))).map(exposureChange);

  const labels_changed: LabelChange[] = [];
  const declassifications_changed: DeclassifyChange[] = [];
  for (const id of ids) {
    const a = before.get(id);
    const b = after.get(id);
    const la = a?.label ?? null;
    const lb = b?.label ?? null;
    // A new or removed instance's label is part of it being added or removed; report only changes.
    if (a && b && la !== lb) labels_changed.push({ instance: id, before: la, after: lb });
    // Most instances declassify nothing on either side: nothing to compare, and no sets made for it.
    if (!a?.declassifies?.length && !b?.declassifies?.length) continue;
    const da = new Set((a?.declassifies ?? []).map((d) => `${d.from}\u0000${d.to}`));
    const db = new Set((b?.declassifies ?? []).map((d) => `${d.from}\u0000${d.to}`));
    const split = (k: string) => ({ from: k.split('\u0000')[0], to: k.split('\u0000')[1] });
    const added = [...db].filter((k) => !da.has(k)).sort().map(split);
    const removed = [...da].filter((k) => !db.has(k)).sort().map(split);
    if (added.length || removed.length) declassifications_changed.push({ instance: id, added, removed });
  }

  const security: SecurityPosture = {
    channels_added: channels_added.sort((x, y) => cmp(x.id, y.id)),
    channels_removed: channels_removed.sort((x, y) => cmp(x.id, y.id)),
    channels_changed: channels_changed.sort((x, y) => cmp(x.id, y.id)),
    exposures_added: exposures_added.sort((x, y) => x.host_port - y.host_port),
    exposures_removed: exposures_removed.sort((x, y) => x.host_port - y.host_port),
    labels_changed,
    declassifications_changed,
    unchanged: false,
  };
  security.unchanged =
    !security.channels_added.length &&
    !security.channels_removed.length &&
    !security.channels_changed.length &&
    !security.exposures_added.length &&
    !security.exposures_removed.length &&
    !labels_changed.length &&
    !declassifications_changed.length;

  const has_changes = counts.create + counts.update + counts.replace + counts.delete > 0 || !security.unchanged;
  return { instances, counts, has_changes, security, summary: summaryLine(counts, has_changes) };
}

function summaryLine(c: PlanChanges['counts'], hasChanges: boolean): string {
  if (!hasChanges) return 'No changes. The deployment matches the plan.';
  const parts = [`${c.create} to add`];
  if (c.update) parts.push(`${c.update} to change`);
  parts.push(`${c.replace} to replace`, `${c.delete} to destroy`);
  return `Plan: ${parts.join(', ')}.`;
}
