// One system over two hosts with a channel between them, on real QEMU: the
// requester on node1, its provider on node2, each host a network namespace
// with its own sshd (hosts/netns.ts). `mclc apply` makes each host's link
// identity there and writes its link.json; the requester's calls cross from
// node1's broker to node2's over their TLS link and get their answers; a call
// the channel's type forbids is refused and counted; `mclc status` on each host
// shows the link up with its bytes; planning again changes nothing; a
// checkpoint of node2 over ssh is taken and restored while node1 keeps
// calling; destroy leaves nothing on either host (no process, no link.json, no
// key).
//
// The simulated hosts share this machine's template cache (MCL_CACHE_DIR),
// where real hosts would each build their own from the same content hash: the
// one template both instances use is built once, which keeps the test to a few
// minutes.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostsUnavailable, type SimHost } from './hosts/netns';
import { createPair, until, type Pair, type Run } from './hosts/pair';

const unavailable = hostsUnavailable();
if (unavailable) console.warn(`cross-host.vm.test.ts skipped: ${unavailable}`);

let pair: Pair;
let h1: SimHost;
let h2: SimHost;

const mclc = (args: string[]): Promise<Run> => pair.mclc(args);
const url = (h: SimHost) => pair.url(h);
const status = (h: SimHost) => pair.status(h) as Promise<any>;
const askerLog = async () => (await mclc(['logs', 'asker', '--host', url(h1)])).stdout;
/** The highest call number the requester saw answered. */
const lastOk = async () => Math.max(0, ...[...(await askerLog()).matchAll(/asker: ok (\d+) /g)].map((m) => Number(m[1])));
const runFile = (h: SimHost, name: string) => pair.runFile(h, name);
const hostProcesses = (h: SimHost) => pair.hostProcesses(h);

describe.skipIf(unavailable !== null)('a channel between two hosts, carried by their brokers\' link (QEMU)', () => {
  beforeAll(async () => {
    // node2's link listens on a port of its own (`link ":7412"`), so the test also shows that setting at work.
    pair = await createPair({}, 'link ":7412"');
    [h1, h2] = [pair.h1, pair.h2];
  }, 60_000);
  afterAll(async () => {
    await pair?.teardown();
  }, 180_000);

  it('applies the system over both hosts, and the requester\'s calls cross the brokers', async () => {
    const plan = await mclc(['plan', 'src', '--out', 'pair.plan']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/between hosts: channel asker\.store->store\.kv/);
    const applied = await mclc(['apply', 'pair.plan', '--root', 'src']);
    expect(applied.code, applied.stderr + applied.stdout).toBe(0);
    expect(applied.stderr).toContain('Links: node1, node2 carry 1 channel(s) between hosts (ports node1 7411, node2 7412)');
    // Each host runs only its own instance; both know the channel.
    const [s1, s2] = [await status(h1), await status(h2)];
    expect(s1.instances.map((i: { id: string }) => i.id)).toEqual(['asker']);
    expect(s2.instances.map((i: { id: string }) => i.id)).toEqual(['store']);
    // The link configuration and the key are on each host, private to it.
    for (const h of [h1, h2]) {
      for (const f of ['link.json', 'link-identity.json']) {
        const file = runFile(h, f);
        expect(file, `${f} on ${h.name}`).not.toBeNull();
        expect(spawnSync('stat', ['-c', '%a', file!], { encoding: 'utf8' }).stdout.trim()).toBe('600');
      }
    }
    // A call from the requester's program crosses to the store on node2 and back.
    await until('a call to cross the hosts', async () => ((await lastOk()) >= 2 ? true : undefined));
    const log = await askerLog();
    expect(log).toMatch(/asker: ok \d+ \{"hit":\{"key":"k","value":"v\d+"\}\}/);
    // The call whose key the type forbids is refused (status 2: denied) and counted on node1, where it was sent.
    expect(log).toContain('asker: forbidden call answered with status 2');
    const ch = (s: { channels: { id: string; violations: number; frames_forward: number }[] }) => s.channels.find((c) => c.id === 'asker.store->store.kv')!;
    const after = [await status(h1), await status(h2)];
    expect(ch(after[0]).violations).toBeGreaterThanOrEqual(1);
    expect(ch(after[1]).violations).toBe(0);
    // Both brokers counted the calls that crossed.
    expect(ch(after[0]).frames_forward).toBeGreaterThan(0);
    expect(ch(after[1]).frames_forward).toBeGreaterThan(0);
    // Status on each host shows the link up, with bytes both ways.
    for (const [s, peer] of [[after[0], 'node2'], [after[1], 'node1']] as const) {
      expect(s.links).toHaveLength(1);
      expect(s.links[0]).toMatchObject({ peer, state: 'up', channels: ['asker.store->store.kv'] });
      expect(s.links[0].bytes_out).toBeGreaterThan(0);
      expect(s.links[0].bytes_in).toBeGreaterThan(0);
    }
    expect(after[0].links[0].address).toBe(`${h2.address}:7412`);
    const text = await mclc(['status', '--host', url(h1)]);
    expect(text.stdout).toMatch(/Links/);
  }, 900_000);

  it('plans no change against both hosts, and applying again keeps the keys', async () => {
    const again = await mclc(['plan', 'src', '--json', '--out', 'again.plan']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ has_changes: false });
    const digest = (h: SimHost) => createHash('sha256').update(readFileSync(runFile(h, 'link.json')!)).digest('hex');
    const before = [digest(h1), digest(h2)];
    const applied = await mclc(['apply', 'again.plan', '--root', 'src']);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain('0 created, 0 replaced, 0 destroyed, 1 unchanged');
    expect([digest(h1), digest(h2)]).toEqual(before);
    const n = await lastOk();
    await until('calls to go on crossing', async () => ((await lastOk()) > n ? true : undefined), 60_000);
  }, 600_000);

  it('checkpoints the provider\'s host over ssh and restores it, and calls cross again', async () => {
    const c = await mclc(['checkpoint', '--host', url(h2), '--out', 'ckpt']);
    expect(c.code, c.stderr + c.stdout).toBe(0);
    expect(existsSync(join(h2.workspace, 'ckpt'))).toBe(true);
    const r = await mclc(['restore', 'ckpt', '--host', url(h2)]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const s2 = await status(h2);
    expect(s2.instances[0].clones[0].state).toBe('running');
    const n = await lastOk();
    await until('calls to cross after the restore', async () => ((await lastOk()) > n ? true : undefined), 120_000);
  }, 600_000);

  it('destroy leaves nothing on either host: no process, no link configuration, no key', async () => {
    for (const h of [h1, h2]) {
      const d = await mclc(['destroy', '--host', url(h)]);
      expect(d.code, d.stderr).toBe(0);
      expect((await status(h)).deployed).toBe(false);
      await until(`every process on ${h.name} to end`, async () => (hostProcesses(h).length === 0 ? true : undefined), 30_000);
      expect(runFile(h, 'link.json')).toBeNull();
      expect(runFile(h, 'link-identity.json')).toBeNull();
    }
  }, 300_000);
});
