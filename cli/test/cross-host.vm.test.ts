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

import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDirCandidates } from '../../backends/kvm/src/lifecycle/rundir';
import { createHosts, hostsUnavailable, type SimHost, type SimHosts } from './hosts/netns';

const REPO = join(__dirname, '..', '..');
const MCLC = join(REPO, 'cli', 'dist', 'mclc.mjs');
const unavailable = hostsUnavailable();
if (unavailable) console.warn(`cross-host.vm.test.ts skipped: ${unavailable}`);

let sim: SimHosts;
let runner: string;
let src: string;
let h1: SimHost;
let h2: SimHost;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function mclc(args: string[]): Promise<Run> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [MCLC, ...args], {
      cwd: runner,
      env: { ...process.env, NO_COLOR: '1', MCL_IN_AUTOMATION: '1', MCL_SSH: sim.sshCommand, MCL_REMOTE_MCLC: sim.mclc },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => res({ code, stdout, stderr }));
  });
}

/** The host's address by IP: the link of the host that dials goes to the same address ssh reaches. */
const url = (h: SimHost) => `ssh://${h.address}${h.workspace}`;

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 180_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

const status = async (h: SimHost) => JSON.parse((await mclc(['status', '--host', url(h), '--json'])).stdout);
const askerLog = async () => (await mclc(['logs', 'asker', '--host', url(h1)])).stdout;
/** The highest call number the requester saw answered. */
const lastOk = async () => Math.max(0, ...[...(await askerLog()).matchAll(/asker: ok (\d+) /g)].map((m) => Number(m[1])));

/** The files of the host's run directory (the hosts share the file system; the host's mclc runs without XDG_RUNTIME_DIR). */
function runFile(h: SimHost, name: string): string | null {
  for (const dir of runDirCandidates(join(h.workspace, '.mcl', 'state.json'), { PATH: process.env.PATH })) {
    if (existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

/** Processes in the host's namespace other than its sshd: the supervisor, QEMU, zygotes. */
const hostProcesses = (h: SimHost) =>
  spawnSync('ip', ['netns', 'pids', h.netns], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter(Boolean)
    .filter((pid) => {
      try {
        return !readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('sshd');
      } catch {
        return false;
      }
    });

describe.skipIf(unavailable !== null)('a channel between two hosts, carried by their brokers\' link (QEMU)', () => {
  beforeAll(async () => {
    sim = await createHosts(['node1', 'node2'], process.env.MCL_CACHE_DIR ? { MCL_CACHE_DIR: process.env.MCL_CACHE_DIR } : {});
    [h1, h2] = sim.hosts;
    runner = join(sim.dir, 'runner');
    src = join(runner, 'src');
    mkdirSync(src, { recursive: true });
    cpSync(join(__dirname, 'fixtures/cross'), src, { recursive: true });
    writeFileSync(
      join(src, 'main.mcl'),
      readFileSync(join(__dirname, 'fixtures/cross/main.mcl'), 'utf8') +
        `\ntarget node1 { backend kvm  memory 2GiB  vcpus 2  overcommit 4  host "${url(h1)}" }\n` +
        `target node2 { backend kvm  memory 2GiB  vcpus 2  overcommit 4  host "${url(h2)}" }\n` +
        `deploy Pair to [node1, node2] {\n  place asker on node1\n  place store on node2\n}\n`,
    );
  }, 60_000);
  afterAll(async () => {
    if (sim) for (const h of sim.hosts) await mclc(['destroy', '--host', url(h)]).catch(() => undefined);
    sim?.teardown();
  }, 180_000);

  it('applies the system over both hosts, and the requester\'s calls cross the brokers', async () => {
    const plan = await mclc(['plan', 'src', '--out', 'pair.plan']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/between hosts: channel asker\.store->store\.kv/);
    const applied = await mclc(['apply', 'pair.plan', '--root', 'src']);
    expect(applied.code, applied.stderr + applied.stdout).toBe(0);
    expect(applied.stderr).toContain('Links: node1, node2 carry 1 channel(s) between hosts (port 7411)');
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
    expect(after[0].links[0].address).toBe(`${h2.address}:7411`);
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
