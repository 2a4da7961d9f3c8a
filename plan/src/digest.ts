// The plan's digests: what each one is computed over, written once. The
// compiler computes them when it builds a plan, `mclc` recomputes them before
// it shows or applies one, and a backend may do the same.
//
// Every digest is the lower-case hex SHA-256 of canonical JSON (./canonical).
// The hash is passed in: this package runs unchanged in the editor and the
// browser, so its own is the pure-JS `sha256Hex`, while `mclc` and the
// language server pass node:crypto's (`nativeSha256` of
// @mcl/compiler/node-host), several times faster on a large plan.

import { canonicalJson, canonicalJsonMembers } from './canonical';
import { sha256Hex } from './sha256';
import type { Plan, PlanChannel, PlanCheck, PlanEgress, PlanExposure, PlanImage, PlanInstance, PlanSource } from './types';

/** SHA-256 of the UTF-8 encoding of a string, or of the concatenation of strings (hashed piece by piece), as lower-case hex. */
export type Sha256 = (text: string | readonly string[]) => string;

/** The pure-JS SHA-256 (no Node needed); joins the pieces first. */
export const pureSha256: Sha256 = (text) => sha256Hex(typeof text === 'string' ? text : text.join(''));

/** An image's digest: over its canonical JSON without the digest. */
export function imageDigest(image: Omit<PlanImage, 'digest'> | PlanImage, sha256: Sha256 = pureSha256): string {
  const { digest: _, ...rest } = image as PlanImage;
  return sha256(canonicalJson(rest));
}

/**
 * An instance's digest: over its canonical JSON without the digest. A caller
 * that already holds that JSON (the compiler builds instances with their keys
 * in canonical order, so `JSON.stringify` gives it) passes it as `json`.
 */
export function instanceDigest(instance: Omit<PlanInstance, 'digest'> | PlanInstance, sha256: Sha256 = pureSha256, json?: string): string {
  if (json !== undefined) return sha256(json);
  const { digest: _, ...rest } = instance as PlanInstance;
  return sha256(canonicalJson(rest));
}

/**
 * The canonical JSON of an instance with its digest, from the canonical JSON
 * without it (the text `instanceDigest` hashed). Keys are sorted, so `digest`
 * goes right before the top-level `"id"` key (after `component` and
 * `declassifies`, neither of which can contain `,"id":` unescaped: a string's
 * quotes are escaped, and declassify entries only have `from` and `to`).
 */
export function instanceJsonWithDigest(json: string, digest: string): string {
  const at = json.indexOf(',"id":');
  return at < 0 ? json : `${json.slice(0, at)},"digest":"${digest}"${json.slice(at)}`;
}

/** `digests.sources`: over the sorted (path, sha256) pairs of the plan's sources. */
export function sourcesDigest(sources: readonly PlanSource[], sha256: Sha256 = pureSha256): string {
  return sha256(canonicalJson(sources.map((s) => [s.path, s.sha256])));
}

/**
 * `digests.invariants`: over every channel's (id, invariants), every
 * exposure's (transport:host_port, invariants) and the checks: everything the
 * broker enforces at run time, so that a reviewer can compare this one digest.
 */
export function invariantsDigest(
  channels: readonly PlanChannel[],
  exposures: readonly PlanExposure[],
  checks: readonly PlanCheck[],
  sha256: Sha256 = pureSha256,
  egresses?: readonly PlanEgress[],
): string {
  // Hashed member by member (canonicalJsonMembers): as one value, the checks (whose keys are not in
  // sorted order) sent the whole object to the sorting copy, which walked every channel's invariants
  // a second time.
  return sha256(
    canonicalJsonMembers({
      channels: channels.map((c) => [c.id, c.invariants]),
      exposures: exposures.map((e) => [`${e.transport}:${e.host_port}`, e.invariants]),
      // Egresses are hashed only when there are some, so that plans without them keep their digests.
      ...(egresses?.length ? { egresses: egresses.map((e) => [e.name, e.destination, e.invariants, e.connections ?? null]) } : {}),
      checks,
    }),
  );
}

/** Known canonical JSON of a plan's parts, by the compiler that just wrote them (see `planDigestParts`). */
export interface PlanJsonParts {
  /** Canonical JSON of each instance, digest included, by id. */
  instances: ReadonlyMap<string, string>;
  /** Canonical JSON of each channel, in the plan's order. */
  channels: readonly string[];
}

/**
 * The canonical JSON of the plan with `digests.plan` set to "" (what
 * `digests.plan` is computed over), in pieces whose concatenation is the
 * whole. The instances and channels (most of a large plan) are written one
 * by one, or taken from `known`, and the pieces are gathered into chunks of
 * about 64 KiB: for 10,000 instances the whole is 14 MB, and building,
 * flattening and encoding it as one string took about 130 ms against about
 * 50 for hashing the chunks. `"instances":[]` can only occur once as a key
 * (quotes inside strings are escaped), which is where the instances go.
 */
export function planDigestParts(plan: Plan, known?: PlanJsonParts): string[] {
  const body: Plan = { ...plan, digests: { ...plan.digests, plan: '' } };
  const channels = known && known.channels.length === plan.channels.length ? known.channels : plan.channels.map((c) => canonicalJson(c));
  const instances = plan.instances.map((i) => known?.instances.get(i.id) ?? canonicalJson(i));
  const shell = canonicalJson({ ...body, channels: [], instances: [] });
  // `channels` is the first key of the plan in canonical order.
  const head = '{"channels":[]';
  const at = shell.indexOf('"instances":[]');
  if (at < 0 || !shell.startsWith(head)) return [canonicalJson(body)];
  const out = new Chunks();
  out.add('{"channels":[');
  out.list(channels);
  out.add(`]${shell.slice(head.length, at)}"instances":[`);
  out.list(instances);
  out.add(`]${shell.slice(at + 14)}`);
  return out.done();
}

/** `digests.plan`: over the canonical JSON of the plan with `digests.plan` set to "". */
export function planDigest(plan: Plan, sha256: Sha256 = pureSha256, known?: PlanJsonParts): string {
  return sha256(planDigestParts(plan, known));
}

/**
 * Every digest of the plan that does not match what it covers, as sentences
 * (empty when all match): the plan's own, the invariants', the sources'
 * list, each image's and each instance's. Source files themselves are not
 * read here: their digests are checked against the files by whoever has them.
 */
export function digestMismatches(plan: Plan, sha256: Sha256 = pureSha256): string[] {
  const out: string[] = [];
  // Each instance is written once: without its digest for its own, and with it (spliced) for the plan's.
  const instances = new Map<string, string>();
  const wrong: string[] = [];
  for (const i of plan.instances) {
    const { digest, ...rest } = i;
    const json = canonicalJson(rest);
    if (instanceDigest(rest, sha256, json) !== digest) wrong.push(i.id);
    instances.set(i.id, instanceJsonWithDigest(json, digest));
  }
  const known = instances.size === plan.instances.length ? { instances, channels: plan.channels.map((c) => canonicalJson(c)) } : undefined;
  if (planDigest(plan, sha256, known) !== plan.digests.plan) out.push('digests.plan does not match the plan');
  if (invariantsDigest(plan.channels, plan.exposures, plan.checks, sha256, plan.egresses) !== plan.digests.invariants) out.push('digests.invariants does not match the channels\' and exposures\' invariants and the checks');
  if (sourcesDigest(plan.sources, sha256) !== plan.digests.sources) out.push('digests.sources does not match the list of sources');
  for (const i of plan.images) if (imageDigest(i, sha256) !== i.digest) out.push(`the digest of image \`${i.name}\` does not match it`);
  for (const id of wrong) out.push(`the digest of instance \`${id}\` does not match it`);
  return out;
}

/** Collects strings into pieces of at least CHUNK characters each. */
class Chunks {
  private readonly chunks: string[] = [];
  private pending: string[] = [];
  private length = 0;

  add(s: string): void {
    this.pending.push(s);
    this.length += s.length;
    if (this.length >= CHUNK) this.flush();
  }

  /** The items, comma-separated. */
  list(items: readonly string[]): void {
    for (let i = 0; i < items.length; i++) this.add(i === 0 ? items[i] : `,${items[i]}`);
  }

  done(): string[] {
    this.flush();
    return this.chunks;
  }

  private flush(): void {
    if (this.pending.length) this.chunks.push(this.pending.join(''));
    this.pending = [];
    this.length = 0;
  }
}

const CHUNK = 64 * 1024;
