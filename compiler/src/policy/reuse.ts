// What one compile's policy checks may take over from an earlier compile's
// (used by the IncrementalCompiler, see incremental.ts).
//
// The policy checker is a pure function of its input. Of that input, the
// source locations (`origins`, and every `span` of the rules and of the
// labels' declarations) are read only to place diagnostics, and the plan
// instances' program, parameters, sensitive parameter names and digest are
// not read at all. So a run over an input equal to the last run's in
// everything else gives the same checks and resources, and the same
// diagnostics as long as the locations they were placed at are the same:
// then its result is taken over instead. The last run records which
// origins it read (only its diagnostics read any), and those must be the
// same too; when it reported diagnostics, so must the labels' declarations,
// and the spans of the rules written in a file its diagnostics name (a
// rule's span is only ever reported in the rule's own file). An edit that changes no wiring, label, rule, limit
// or resource (a parameter, a program, a comment, a typo corrected back)
// then costs a comparison of the two inputs, and that comparison is mostly
// by identity: the plan body hands over the very objects it took over
// (plan/body-cache.ts), and only the few it built again are compared by
// value.

import type { PolicyInput, PolicyResult } from './types';

/** Keys never read by the checker, or read only to place diagnostics, by where they occur. */
const SKIPPED_EVERYWHERE = new Set(['span']);
const SKIPPED_IN_INSTANCES = new Set([
  'span',
  'program',
  'params',
  'sensitive_params',
  'digest',
]);
const NOTHING_SKIPPED = new Set<string>();

type Origins = PolicyInput['origins'];

/** One origin a run read: which record, which key (`target` has none), and what it held. */
interface OriginRead {
  record: keyof Origins;
  key: string | undefined;
  value: unknown;
}

interface Run {
  input: PolicyInput;
  result: PolicyResult;
  /** The files its diagnostics name: where they are, their related locations and their fixes. */
  placed: ReadonlySet<string>;
  /** The origins the run read; undefined when it enumerated a record, so that any could matter. */
  reads: OriginRead[] | undefined;
}

export class PolicyCache {
  private last = new Map<string, Run>();
  private used = new Set<string>();
  /** Whether the last compile's policy checks of each root were taken over, for tests and the benchmark. */
  readonly stats = { reused: 0, checked: 0 };

  /** Starts a compile. */
  begin(): void {
    this.used = new Set();
    this.stats.reused = 0;
    this.stats.checked = 0;
  }

  /**
   * Marks a root as still present in this compile although its policy checks did not run (an
   * error stopped them): its last run stays available to the compile that fixes the error.
   */
  keep(root: string): void {
    this.used.add(root);
  }

  /** The policy result of `input` for `root`: taken over when allowed (see above), else `check(input)`. */
  run(
    root: string,
    input: PolicyInput,
    check: (input: PolicyInput) => PolicyResult,
  ): PolicyResult {
    this.used.add(root);
    const was = this.last.get(root);
    if (
      was &&
      was.reads &&
      samePolicyInput(was.input, input, was.placed) &&
      was.reads.every((r) =>
        same(r.value, originOf(input.origins, r), NOTHING_SKIPPED),
      )
    ) {
      this.stats.reused++;
      // The newer input is kept: the next comparison then finds more of its objects identical.
      this.last.set(root, { ...was, input });
      return was.result;
    }
    const reads: OriginRead[] = [];
    const recorded = { reads: reads as OriginRead[] | undefined };
    const result = check({
      ...input,
      origins: recording(input.origins, recorded),
    });
    this.stats.checked++;
    this.last.set(root, {
      input,
      result,
      placed: filesOf(result),
      reads: recorded.reads,
    });
    return result;
  }

  /** Ends a compile: the runs of roots that are gone are dropped. */
  end(): void {
    for (const root of [...this.last.keys()])
      if (!this.used.has(root)) this.last.delete(root);
  }
}

function filesOf(result: PolicyResult): Set<string> {
  const files = new Set<string>();
  for (const d of result.diagnostics) {
    files.add(d.file);
    for (const r of d.related ?? []) files.add(r.file);
    for (const f of d.fixes ?? []) for (const e of f.edits) files.add(e.file);
  }
  return files;
}

/**
 * Whether two policy inputs are equal in everything the checker reads other than the origins,
 * and other than spans: the labels' declarations count when `placed` names any file, and a
 * rule's spans when it names the rule's file.
 */
export function samePolicyInput(
  a: PolicyInput,
  b: PolicyInput,
  placed: ReadonlySet<string>,
): boolean {
  const where = placed.size > 0 ? NOTHING_SKIPPED : SKIPPED_EVERYWHERE;
  return (
    same(a.target, b.target, SKIPPED_EVERYWHERE) &&
    same(a.targets, b.targets, SKIPPED_EVERYWHERE) &&
    same(a.templates, b.templates, SKIPPED_EVERYWHERE) &&
    same(a.instances, b.instances, SKIPPED_IN_INSTANCES) &&
    same(a.channels, b.channels, SKIPPED_EVERYWHERE) &&
    same(a.exposures, b.exposures, SKIPPED_EVERYWHERE) &&
    same(a.egresses, b.egresses, SKIPPED_EVERYWHERE) &&
    same(a.exports, b.exports, SKIPPED_EVERYWHERE) &&
    same(a.rules, b.rules, SKIPPED_EVERYWHERE) &&
    rulesPlacedAlike(a.rules, b.rules, placed) &&
    same(a.labels, b.labels, where, where)
  );
}

/** Whether the rules (equal but for spans) written in a file `placed` names have the same spans. */
function rulesPlacedAlike(
  a: PolicyInput['rules'],
  b: PolicyInput['rules'],
  placed: ReadonlySet<string>,
): boolean {
  if (placed.size === 0 || !a || !b) return true;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i] || !placed.has(a[i].file)) continue;
    if (!same(a[i], b[i], NOTHING_SKIPPED, NOTHING_SKIPPED)) return false;
  }
  return true;
}

function originOf(origins: Origins | undefined, r: OriginRead): unknown {
  const record = origins?.[r.record];
  return r.key === undefined
    ? record
    : (record as Record<string, unknown> | undefined)?.[r.key];
}

/**
 * The origins as the checker sees them, recording every origin it reads into `recorded.reads`.
 * Enumerating a record's keys, or asking whether it has one, counts as reading all of them: the
 * run is then never taken over.
 */
function recording(
  origins: Origins,
  recorded: { reads: OriginRead[] | undefined },
): Origins {
  if (!origins) return origins;
  // Asking for a key or enumerating the keys, of the origins or of one record, stops the recording.
  const enumerating: ProxyHandler<object> = {
    has(t: object, key: string | symbol) {
      recorded.reads = undefined;
      return Reflect.has(t, key);
    },
    ownKeys(t: object) {
      recorded.reads = undefined;
      return Reflect.ownKeys(t);
    },
  };
  // One recording view per record, made when the checker first reads it.
  const views = new Map<string, unknown>();
  const record = (name: keyof Origins, value: Record<string, unknown>) =>
    new Proxy<Record<string, unknown>>(value, {
      ...enumerating,
      get(t, key) {
        const v = Reflect.get(t, key);
        if (typeof key === 'string')
          recorded.reads?.push({ record: name, key, value: v });
        return v;
      },
    });
  return new Proxy<NonNullable<Origins>>(origins, {
    ...enumerating,
    get(t, key) {
      const v = Reflect.get(t, key);
      if (key === 'target') {
        recorded.reads?.push({ record: 'target', key: undefined, value: v });
        return v;
      }
      if (typeof key !== 'string' || !v || typeof v !== 'object') return v;
      let view = views.get(key);
      if (view === undefined) views.set(key, (view = record(key as keyof Origins, v as Record<string, unknown>)));
      return view;
    },
  });
}

/**
 * Deep equality of plain data (the plan's objects, syntax tree nodes), by identity first. `skip`
 * names the keys left out of the value itself, or of each element when it is an array; `below`
 * those left out further down (by default `span`). Objects with another prototype than a plain object's or an array's are
 * equal only when identical.
 */
function same(
  a: unknown,
  b: unknown,
  skip: ReadonlySet<string>,
  below: ReadonlySet<string> = SKIPPED_EVERYWHERE,
): boolean {
  if (a === b) return true;
  if (
    typeof a !== 'object' ||
    typeof b !== 'object' ||
    a === null ||
    b === null
  )
    return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++)
      if (a[i] !== b[i] && !same(a[i], b[i], skip, below)) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const pa = Object.getPrototypeOf(a);
  if (
    pa !== Object.getPrototypeOf(b) ||
    (pa !== Object.prototype && pa !== null)
  )
    return false;
  const ka = Object.keys(a).filter((k) => !skip.has(k));
  const kb = Object.keys(b).filter((k) => !skip.has(k));
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (
      !same(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k],
        below,
        below,
      )
    )
      return false;
  }
  return true;
}
