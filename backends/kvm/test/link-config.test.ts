// The deployment's link identity and link.json on one host (links.ts): made
// once and kept until destroy removes the run directory, private (0600), and
// checked as the supervisor checks it; a planted identity whose key is not its
// certificate's is replaced.

import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseLinkConfig, LINK_CONFIG_FILE } from '@mcl/broker';
import type { BackendOptions } from '@mcl/plan/backend';
import { linkConfig, linkConfigDigest, linkIdentity, LINK_IDENTITY_FILE } from '../src/lifecycle/links';
import { findRunDir, removeRunDir } from '../src/lifecycle/rundir';
import { identities } from '../../broker/test/link-helpers';
import { acquireLock } from '@mcl/plan/state-store';

let ws: string;
let opts: BackendOptions;

beforeEach(() => {
  ws = mkdtempSync(join(tmpdir(), 'mcl-linkcfg-'));
  opts = { workspace: ws, stateFile: join(ws, '.mcl', 'state.json'), lockTimeoutMs: 0, supervisorCommand: [], signal: new AbortController().signal, automation: true };
});
afterEach(() => rmSync(ws, { recursive: true, force: true }));

function runDir(): string {
  const rd = findRunDir(opts.stateFile);
  if (rd.kind !== 'ours') throw new Error(`no run directory: ${rd.kind}`);
  return rd.dir;
}

describe('the link identity and configuration of a host', () => {
  it('makes the identity once, keeps it on the host (0600), and writes a link.json the supervisor accepts', async () => {
    const first = await linkIdentity(opts, 'node2');
    expect(first.cert).toContain('BEGIN CERTIFICATE');
    const again = await linkIdentity(opts, 'node2');
    expect(again.cert).toBe(first.cert);
    const dir = runDir();
    expect(statSync(join(dir, LINK_IDENTITY_FILE)).mode & 0o777).toBe(0o600);
    const peer = identities().a;
    const config = { name: 'node2', peers: [{ name: 'a', cert: peer.cert, host: '', port: 0 }], listen: { host: '0.0.0.0', port: 7411 } };
    expect(await linkConfig(opts, config)).toEqual({ changed: true });
    expect(await linkConfig(opts, config)).toEqual({ changed: false });
    const file = join(dir, LINK_CONFIG_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const parsed = parseLinkConfig(JSON.parse(readFileSync(file, 'utf8')));
    if (typeof parsed === 'string') throw new Error(parsed);
    expect(parsed.self.cert).toBe(first.cert);
    expect(parsed.peers).toEqual(config.peers);
    const digest = linkConfigDigest(file);
    expect(await linkConfig(opts, { ...config, listen: { host: '0.0.0.0', port: 7412 } })).toEqual({ changed: true });
    expect(linkConfigDigest(file)).not.toBe(digest);
    // Destroy removes the run directory: the next identity is a new one.
    removeRunDir(findRunDir(opts.stateFile) as never);
    expect(linkConfigDigest(file)).toBe('');
    expect((await linkIdentity(opts, 'node2')).cert).not.toBe(first.cert);
  });

  it('replaces a planted identity whose key is not its certificate\'s, and refuses a configuration before any identity', async () => {
    await expect(linkConfig(opts, { name: 'node2', peers: [{ name: 'a', cert: identities().a.cert, host: '', port: 0 }] })).rejects.toThrow(/no usable link identity for node2/);
    const { a, b } = identities();
    await linkIdentity(opts, 'node2');
    writeFileSync(join(runDir(), LINK_IDENTITY_FILE), JSON.stringify({ name: 'node2', key: a.key, cert: b.cert }), { mode: 0o600 });
    const made = await linkIdentity(opts, 'node2');
    expect(made.cert).not.toBe(b.cert);
    // A peer that is not a certificate is refused as the supervisor would refuse it.
    await expect(linkConfig(opts, { name: 'node2', peers: [{ name: 'a', cert: 'not a certificate', host: '', port: 0 }] })).rejects.toThrow(/not valid/);
  });

  it('waits for the state lock as apply does: a host applying for another runner is not raced', async () => {
    const held = await acquireLock(opts.stateFile, { operation: 'apply' });
    try {
      await expect(linkIdentity(opts, 'node2')).rejects.toMatchObject({ kind: 'locked' });
    } finally {
      held.release();
    }
    expect((await linkIdentity(opts, 'node2')).cert).toContain('BEGIN CERTIFICATE');
  });
});
