// The lifecycle commands against hosts reached over SSH, on hosts simulated as
// network namespaces with their own sshd (hosts/netns.ts): reaching a host, and
// each way of not reaching it, said clearly. No guest is started here (that is
// remote-hosts.vm.test.ts), so this runs in seconds.

import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHosts, hostsUnavailable, type SimHosts } from './hosts/netns';

const REPO = join(__dirname, '..', '..');
const MCLC = join(REPO, 'cli', 'dist', 'mclc.mjs');

const unavailable = hostsUnavailable();
// In CI (root, openssh installed by scripts/setup.sh) this must run; elsewhere the reason is printed.
if (unavailable) console.warn(`remote-hosts.test.ts skipped: ${unavailable}`);

let sim: SimHosts;
let ws: string;

/** Runs the local mclc (in the machine's namespace; its ssh runs in the client namespace through MCL_SSH). */
function mclc(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [MCLC, ...args], {
      cwd: ws,
      env: { ...process.env, NO_COLOR: '1', MCL_IN_AUTOMATION: '1', MCL_SSH: sim.sshCommand, MCL_REMOTE_MCLC: sim.mclc, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => res({ code, stdout, stderr }));
  });
}

const url = (name: string) => `ssh://${name}${sim.hosts.find((h) => h.name === name)!.workspace}`;

describe.skipIf(unavailable !== null)('lifecycle commands on hosts over ssh', () => {
  beforeAll(async () => {
    sim = await createHosts(['node1', 'node2']);
    ws = join(sim.dir, 'runner');
    mkdirSync(ws);
  }, 60_000);
  afterAll(() => sim?.teardown());

  it('runs status and doctor on the host with its own mclc', async () => {
    const st = await mclc(['status', '--host', url('node1')]);
    expect(st.stderr).toBe('');
    expect(st.stdout).toContain('Nothing is deployed.');
    expect(st.code).toBe(0);
    const js = await mclc(['status', '--host', url('node2'), '--json']);
    expect(JSON.parse(js.stdout)).toMatchObject({ deployed: false, host: url('node2') });
    const doc = await mclc(['doctor', '--host', url('node1'), '--json']);
    const report = JSON.parse(doc.stdout);
    expect(report.checks.length).toBeGreaterThan(0);
    expect([0, 5]).toContain(doc.code);
  }, 60_000);

  it('reports a host it cannot reach', async () => {
    const r = await mclc(['status', '--host', `ssh://10.250.${process.pid % 250}.99`]);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/error: cannot reach 10\.250\.\d+\.99: .*(No route|timed out|unreachable)/);
    expect(r.stderr).toContain('hint: Check the host name');
  }, 60_000);

  it('reports a refused key', async () => {
    const cfg = join(sim.dir, 'ssh_config_wrong_key');
    const wrong = join(sim.dir, 'wrong_key');
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', wrong]);
    writeFileSync(cfg, readFileSync(sim.sshConfig, 'utf8').replace(sim.clientKey, wrong));
    const r = await mclc(['status', '--host', url('node1')], { MCL_SSH: sim.sshCommand.replace(sim.sshConfig, cfg) });
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/error: node1 refused the key: .*Permission denied \(publickey\)/);
    expect(r.stderr).toContain('authorized_keys');
  }, 60_000);

  it('refuses a host whose key changed, and one whose key is not known', async () => {
    const known = readFileSync(sim.knownHosts, 'utf8');
    const [line1, line2] = known.trim().split('\n');
    // node1 presents its key, known_hosts holds node2's for it: what a host in between would look like.
    const changed = join(sim.dir, 'known_hosts_changed');
    writeFileSync(changed, `${line1.split(' ')[0]} ${line2.split(' ').slice(1).join(' ')}\n`);
    const cfg = join(sim.dir, 'ssh_config_changed');
    writeFileSync(cfg, readFileSync(sim.sshConfig, 'utf8').replace(sim.knownHosts, changed));
    const r = await mclc(['status', '--host', url('node1')], { MCL_SSH: sim.sshCommand.replace(sim.sshConfig, cfg) });
    expect(r.code).toBe(5);
    expect(r.stderr).toContain('error: the host key of node1 does not match the one known_hosts has for it');
    expect(r.stderr).toContain('ssh-keygen -R node1');

    const empty = join(sim.dir, 'known_hosts_empty');
    writeFileSync(empty, '');
    writeFileSync(cfg, readFileSync(sim.sshConfig, 'utf8').replace(sim.knownHosts, empty));
    const u = await mclc(['status', '--host', url('node1')], { MCL_SSH: sim.sshCommand.replace(sim.sshConfig, cfg) });
    expect(u.code).toBe(5);
    expect(u.stderr).toContain('error: the host key of node1 is not known, and mclc does not accept unknown host keys');
  }, 60_000);

  it('says how to install mclc when the host has none, or one too old', async () => {
    const missing = await mclc(['status', '--host', url('node1')], { MCL_REMOTE_MCLC: '/nonexistent/mclc' });
    expect(missing.code).toBe(5);
    expect(missing.stderr).toMatch(/error: node1 has no mclc: .*(not found|No such file)/);
    expect(missing.stderr).toMatch(/hint: Install mclc \d+\.\d+\.\d+ on node1/);
    // What an mclc from before hosts existed says to `__host`.
    const old = join(sim.dir, 'old-mclc');
    writeFileSync(old, `#!/bin/sh\necho "error: unknown command '__host'" >&2\nexit 1\n`, { mode: 0o755 });
    const o = await mclc(['status', '--host', url('node1')], { MCL_REMOTE_MCLC: old });
    expect(o.code).toBe(5);
    expect(o.stderr).toContain('error: the mclc on node1 is too old to serve as a host');
    expect(o.stderr).toContain('hint: Install mclc');
  }, 60_000);

  it('the host refuses a client of another version, and commands it does not run', async () => {
    const r = sim.client(['sh', '-c', `${sim.sshCommand} node1 ${sim.mclc} __host --client-version 9.0.0 --root x status`]);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ type: 'host', protocol: 1 });
    expect(lines[1]).toMatchObject({ type: 'error', message: expect.stringContaining('does not work with mclc 9.0.0 on the client') });
    expect(r.status).toBe(5);
    const version = JSON.parse(readFileSync(join(REPO, 'cli', 'package.json'), 'utf8')).version;
    const bad = sim.client(['sh', '-c', `${sim.sshCommand} node1 ${sim.mclc} __host --client-version ${version} --root x 'rm'`]);
    expect(bad.stdout).toContain('`rm` is not a command a host runs');
    expect(bad.status).toBe(1);
  }, 60_000);

  it('plan reads the state on the host the target names, and refuses a bad address at the target', async () => {
    const src = join(sim.dir, 'src');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'a.sh'), 'echo hi\n');
    writeFileSync(
      join(src, 'main.mcl'),
      `component A { memory 96MiB program { script "a.sh" } }\nsystem S { a = A }\n` +
        `target node1 { backend kvm memory 1GiB vcpus 1 host "${url('node1')}" }\ndeploy S to node1\n`,
    );
    const p = await mclc(['plan', src, '--json']);
    expect(p.code).toBe(0);
    const doc = JSON.parse(p.stdout);
    expect(doc.target.host).toBe(url('node1'));
    expect(doc.prior_state).toBeNull();
    writeFileSync(join(src, 'main.mcl'), readFileSync(join(src, 'main.mcl'), 'utf8').replace(url('node1'), 'ftp://node1'));
    const bad = await mclc(['validate', src]);
    expect(bad.code).toBe(1);
    expect(bad.stdout + bad.stderr).toContain('MCL0603: `host` must be an SSH address in quotes');
  }, 60_000);

  it('reads usage and the audit trail, and takes checkpoints and restores, on the host', async () => {
    const u = await mclc(['usage', '--host', url('node2')]);
    expect(u.stderr).toBe('');
    expect(u.stdout).toMatch(/^on node2\nNo usage recorded in .*state\.usage\.jsonl\.\n$/);
    const uj = await mclc(['usage', '--host', url('node2'), '--json', '--by', 'instance']);
    expect(JSON.parse(uj.stdout)).toMatchObject({ by: 'instance', records: 0, host: url('node2') });
    const v = await mclc(['audit', 'verify', '--host', url('node2')]);
    expect(v.code).toBe(0);
    expect(v.stdout).toContain('The audit trail is empty');
    const a = await mclc(['audit', '--host', url('node2'), '--tail', '5']);
    expect(a.code).toBe(0);
    // Nothing runs there: the host's own error comes back, named by host, with its exit code.
    const c = await mclc(['checkpoint', '--host', url('node2'), '--out', 'ckpt']);
    expect(c.code).not.toBe(0);
    expect(c.stderr).toMatch(/^error: node2: .*deploy/im);
    const r = await mclc(['restore', 'no-such-checkpoint', '--host', url('node2')]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^error: node2: /m);
  }, 120_000);

  it('plans a system over two hosts against both states, and names the host where setting up their link fails', async () => {
    const src = join(sim.dir, 'two');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'a.sh'), 'echo hi\n');
    writeFileSync(
      join(src, 'main.mcl'),
      `import std.kv.{Kv}\n` +
        `component Db { memory 96MiB provide kv: Kv program { script "a.sh" } }\n` +
        `component App { memory 96MiB require db: Kv program { script "a.sh" } }\n` +
        `system S {\n  app = App\n  db = Db\n  connect app.db -> db.kv\n}\n` +
        `target node1 { backend kvm memory 1GiB vcpus 2 host "${url('node1')}" }\n` +
        `target node2 { backend kvm memory 1GiB vcpus 2 host "${url('node2')}" }\n` +
        `deploy S to [node1, node2] {\n  place db on node2\n}\n`,
    );
    const p = await mclc(['plan', src, '--json', '--out', join(src, 'two.plan')]);
    expect(p.stderr).toBe('');
    expect(p.code).toBe(0);
    const doc = JSON.parse(p.stdout);
    expect(doc.placement).toEqual({ app: 'node1', db: 'node2' });
    expect(doc.states_read).toEqual([url('node1'), url('node2')]);
    expect(doc.prior_states).toEqual({ node1: null, node2: null });
    const human = await mclc(['plan', src]);
    expect(human.stdout).toMatch(/Placement:\n  node1 \(ssh:\/\/node1.*\): app\n  node2 .*: db\n  between hosts: channel app\.db->db\.kv/);
    // The hosts' link identities are made before any part is applied: a host without mclc fails that step, named.
    const a = await mclc(['apply', join(src, 'two.plan'), '--root', src], { MCL_REMOTE_MCLC: '/nonexistent/mclc' });
    expect(a.code).toBe(5);
    expect(a.stderr).toContain(`error: cannot make the link identity of target node1 (${url('node1')}): `);
    expect(a.stderr).toMatch(/node1 has no mclc/);
    // A port that is none is refused before any host is touched.
    const bad = await mclc(['apply', join(src, 'two.plan'), '--root', src], { MCL_LINK_PORT: '99999' });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('MCL_LINK_PORT="99999" is not a TCP port');
  }, 120_000);
});
