// The links of a deployment placed on several hosts: when the plan has
// channels whose ends are on different hosts, the supervisor's broker carries
// them over the links that the run directory's link.json describes (this
// host's identity, the other hosts' pinned certificates and addresses;
// spec/hosts.md, "Links between hosts"). The links close with the broker.

import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { crossHostChannels, type Plan } from '@mcl/plan';
import { LINK_MAX_PEM, type BackendOptions, type LinkConfigInput } from '@mcl/plan/backend';
import { readBoundedFile, writeFileAtomic } from '@mcl/plan/state-store';
import type { Broker, LinkIdentity } from '@mcl/broker';
import { findRunDir, readSmallJson } from './rundir';
import { lock, runDirForApply } from './commands';
import { BackendFailure } from './errors';

/** Largest link.json read: a few certificates and a key. */
const MAX_LINK_CONFIG = 1024 * 1024;

/**
 * Starts the links of `broker` when `plan` has channels between hosts.
 * Returns null when it has none, else the started links or why none could
 * be started (also logged: calls on those channels then fail with an error).
 */
export async function startLinks(broker: Broker, plan: Plan, runDir: string, log: (s: string) => void): Promise<import('@mcl/broker').Links | string | null> {
  const { Links, parseLinkConfig, LINK_CONFIG_FILE } = await import('@mcl/broker');
  if (crossHostChannels(plan).length === 0) return null;
  const file = join(runDir, LINK_CONFIG_FILE);
  const raw = readSmallJson(file, MAX_LINK_CONFIG);
  const cfg = raw === null ? `${file} is missing, unreadable or not JSON` : parseLinkConfig(raw);
  if (typeof cfg === 'string') {
    const why = `the plan has channels between hosts, but no link can carry them: ${cfg}`;
    log(`broker error: ${why}`);
    return why;
  }
  const links = new Links(broker, {
    ...cfg,
    log: (e) => {
      if (e.level !== 'debug') log(`link ${e.level}: ${e.message}`);
    },
  });
  try {
    await links.start();
  } catch (e) {
    const why = `cannot listen for the other hosts: ${(e as Error).message}`;
    log(`link error: ${why}`);
    await links.close();
    return why;
  }
  return links;
}

/** This host's link identity (its private key and certificate), kept in the run directory beside link.json. */
export const LINK_IDENTITY_FILE = 'link-identity.json';

/** Why `value` is not a usable identity for target `name`, or the identity. */
function checkIdentity(value: unknown, name: string): LinkIdentity | string {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return 'it is not a JSON object';
  const v = value as Record<string, unknown>;
  if (v.name !== name) return `it is the identity of ${JSON.stringify(v.name)}, not of ${name}`;
  if (typeof v.key !== 'string' || typeof v.cert !== 'string' || v.key.length > LINK_MAX_PEM || v.cert.length > LINK_MAX_PEM) return 'its key or certificate is missing';
  try {
    // The key must be the certificate's: a planted pair that does not match could never complete a handshake.
    if (!new X509Certificate(v.cert).checkPrivateKey(createPrivateKey(v.key))) return 'its key is not the key of its certificate';
  } catch (e) {
    return `its key or certificate does not parse: ${(e as Error).message}`;
  }
  return { name, key: v.key, cert: v.cert };
}

/**
 * The link identity kept in run directory `runDir` (for target `name` when given, else for the
 * name it carries), or why there is none; checked as `linkIdentity` checks it.
 */
export function readLinkIdentity(runDir: string, name?: string): LinkIdentity | string {
  const raw = readSmallJson(join(runDir, LINK_IDENTITY_FILE), MAX_LINK_CONFIG);
  if (raw === null) return `${LINK_IDENTITY_FILE} is missing or unreadable`;
  const own = name ?? (raw as { name?: unknown })?.name;
  return typeof own === 'string' ? checkIdentity(raw, own) : 'it names no target';
}

/**
 * The deployment's link identity on this host for target `name`: the one in the run directory, or
 * a new one (made here, with its private key written only here, mode 0600). It stays until
 * `destroy` removes the run directory, so applying again keeps the keys the other hosts pinned.
 */
export async function linkIdentity(opts: BackendOptions, name: string): Promise<{ cert: string }> {
  // Under the state lock, as apply: two runners applying at once cannot each make a key and keep the other's certificate.
  return underLock(opts, 'link-identity', () => identityLocked(opts, name));
}

/** Runs `body` holding the deployment's state lock for `operation`. */
async function underLock<T>(opts: BackendOptions, operation: string, body: () => Promise<T>): Promise<T> {
  const held = await lock(opts, operation, () => {});
  try {
    return await body();
  } finally {
    held.release();
  }
}

/** linkIdentity's work, for a caller that holds the state lock already. */
export async function identityLocked(opts: BackendOptions, name: string): Promise<{ cert: string }> {
  const { makeLinkIdentity } = await import('@mcl/broker');
  // Before the first apply the state's directory may not exist yet; the run directory goes beside the state.
  mkdirSync(dirname(opts.stateFile), { recursive: true, mode: 0o700 });
  const rd = runDirForApply(opts.stateFile);
  const file = join(rd.dir, LINK_IDENTITY_FILE);
  const raw = readSmallJson(file, MAX_LINK_CONFIG);
  const kept = raw === null ? null : checkIdentity(raw, name);
  if (kept !== null && typeof kept !== 'string') return { cert: kept.cert };
  let made: LinkIdentity;
  try {
    made = makeLinkIdentity(name);
  } catch (e) {
    throw new BackendFailure('failure', `cannot make the link identity of ${name}: ${(e as Error).message}`, 'The link keys are made with openssl: install it (bash scripts/setup.sh does).');
  }
  writeFileAtomic(rd.dir, LINK_IDENTITY_FILE, JSON.stringify(made) + '\n');
  return { cert: made.cert };
}

/**
 * Writes link.json in the run directory: this host's identity (made by `linkIdentity` first),
 * the peers to pin and reach, where to listen. Checked as the supervisor checks it when it reads
 * it; written with mode 0600, as it holds the private key.
 */
export async function linkConfig(opts: BackendOptions, config: LinkConfigInput): Promise<{ changed: boolean }> {
  return underLock(opts, 'link-config', () => configLocked(opts, config));
}

async function configLocked(opts: BackendOptions, config: LinkConfigInput): Promise<{ changed: boolean }> {
  const { parseLinkConfig, LINK_CONFIG_FILE } = await import('@mcl/broker');
  // The identity comes first (linkIdentity), and with it the run directory: nothing is created here.
  const rd = findRunDir(opts.stateFile);
  const raw = rd.kind === 'ours' ? readSmallJson(join(rd.dir, LINK_IDENTITY_FILE), MAX_LINK_CONFIG) : null;
  const self = raw === null ? 'there is none' : checkIdentity(raw, config.name);
  if (typeof self === 'string' || rd.kind !== 'ours') throw new BackendFailure('failure', `this host has no usable link identity for ${config.name}: ${self}`, 'Apply the plan again: apply makes the identity before it writes the link configuration.');
  const full = { self, peers: config.peers, ...(config.listen ? { listen: config.listen } : {}) };
  const checked = parseLinkConfig(full);
  if (typeof checked === 'string') throw new BackendFailure('usage', `the link configuration for ${config.name} is not valid: ${checked}`);
  const text = JSON.stringify(full) + '\n';
  const before = readSmallJson(join(rd.dir, LINK_CONFIG_FILE), MAX_LINK_CONFIG);
  if (before !== null && JSON.stringify(before) + '\n' === text) return { changed: false };
  writeFileAtomic(rd.dir, LINK_CONFIG_FILE, text);
  return { changed: true };
}

/** The digest of the link configuration `file` ('' when absent): a supervisor whose links' file changed makes a new broker at its next apply. */
export function linkConfigDigest(file: string): string {
  const r = readBoundedFile(file, MAX_LINK_CONFIG, { noFollow: true });
  return r.ok ? createHash('sha256').update(r.text).digest('hex') : '';
}
