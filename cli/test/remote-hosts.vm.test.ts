// A deployment on a host reached over ssh, on real QEMU: `mclc plan` and
// `mclc apply` on a runner that keeps nothing, the guests, supervisor, broker
// and state on the host (a network namespace with its own sshd, hosts/netns.ts),
// a connection lost half-way through an apply (the host finishes it; the next
// apply converges), two runners at once serialised by the host's lock, and
// destroy leaving nothing running there.
//
// The simulated hosts share this machine's template cache (MCL_CACHE_DIR),
// where real hosts would each build their own from the same content hash: one
// template build for the whole test keeps it inside CI's time budget.

import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHosts, hostsUnavailable, type SimHost, type SimHosts } from './hosts/netns';

const REPO = join(__dirname, '..', '..');
const MCLC = join(REPO, 'cli', 'dist', 'mclc.mjs');
const unavailable = hostsUnavailable();
if (unavailable) console.warn(`remote-hosts.vm.test.ts skipped: ${unavailable}`);

let sim: SimHosts;
let runner: string;
let src: string;
let node1: SimHost;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function mclc(args: string[], onStderr?: (text: string, kill: () => void) => void): Promise<Run> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [MCLC, ...args], {
      cwd: runner,
      env: { ...process.env, NO_COLOR: '1', MCL_IN_AUTOMATION: '1', MCL_SSH: sim.sshCommand, MCL_REMOTE_MCLC: sim.mclc },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => {
      stderr += d;
      onStderr?.(stderr, () => p.kill('SIGKILL'));
    });
    p.on('close', (code) => res({ code, stdout, stderr }));
  });
}

const url = () => `ssh://node1${node1.workspace}`;
const writeTarget = (extra = '') =>
  writeFileSync(
    join(src, 'main.mcl'),
    readFileSync(join(__dirname, 'fixtures/remote/main.mcl'), 'utf8').replace('  a = Steady\n', `  a = Steady\n${extra}`) +
      `\ntarget node1 {\n  backend kvm\n  memory 2GiB\n  vcpus 2\n  overcommit 4\n  host "${url()}"\n}\n\ndeploy Lab to node1\n`,
  );

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const hostStatus = async () => JSON.parse((await mclc(['status', '--host', url(), '--json'])).stdout);
/** Processes in node1's namespace other than its sshd: the supervisor, QEMU, zygotes. */
const hostProcesses = () =>
  spawnSync('ip', ['netns', 'pids', node1.netns], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter(Boolean)
    .filter((pid) => {
      try {
        return !readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('sshd');
      } catch {
        return false;
      }
    });

describe.skipIf(unavailable !== null)('a deployment on a host over ssh (QEMU)', () => {
  beforeAll(async () => {
    sim = await createHosts(['node1', 'node2'], process.env.MCL_CACHE_DIR ? { MCL_CACHE_DIR: process.env.MCL_CACHE_DIR } : {});
    node1 = sim.hosts[0];
    runner = join(sim.dir, 'runner');
    src = join(runner, 'src');
    mkdirSync(src, { recursive: true });
    cpSync(join(__dirname, 'fixtures/remote/guest'), join(src, 'guest'), { recursive: true });
    writeTarget();
  }, 60_000);
  afterAll(async () => {
    if (sim) await mclc(['destroy', '--host', url()]).catch(() => undefined);
    sim?.teardown();
  }, 120_000);

  it('plans against the host, applies there, and the runner keeps nothing', async () => {
    const plan = await mclc(['plan', 'src', '--out', 'lab.plan']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain('nothing is deployed yet');
    // A second plan made against the same (empty) host, to be refused once the first is applied.
    writeTarget('  b = Steady\n');
    expect((await mclc(['plan', 'src', '--out', 'other.plan'])).code).toBe(0);
    writeTarget();
    const applied = await mclc(['apply', 'lab.plan', '--root', 'src']);
    expect(applied.stderr + applied.stdout).toContain('Apply complete: 1 created');
    // The host's summary of the changes, as a local apply prints it before it starts.
    expect(applied.stderr).toMatch(/Applying main\.Lab on node1 \(.*there\): Plan: 1 to add, 0 to replace/);
    expect(applied.code).toBe(0);
    // The state, its lock and the run directory are on the host; the runner has no .mcl at all.
    expect(existsSync(join(runner, '.mcl'))).toBe(false);
    expect(existsSync(join(src, '.mcl'))).toBe(false);
    expect(existsSync(join(node1.workspace, '.mcl', 'state.json'))).toBe(true);
    const st = await hostStatus();
    expect(st).toMatchObject({ deployed: true, system: 'main.Lab', serial: 1, host: url() });
    expect(st.instances[0].clones[0].state).toBe('running');
    const text = await mclc(['status', '--host', url()]);
    expect(text.stdout).toContain('on node1');
    const logs = await until('the program to start', async () => {
      const l = await mclc(['logs', 'a', '--host', url()]);
      return l.stdout.includes('steady: up') ? l : undefined;
    });
    expect(logs.code).toBe(0);
    // The same plan again only converges; one made before that apply is stale against the host's state.
    const same = await mclc(['apply', 'lab.plan', '--root', 'src']);
    expect(same.code).toBe(0);
    expect(same.stdout).toContain('0 created, 0 replaced, 0 destroyed, 1 unchanged');
    const stale = await mclc(['apply', 'other.plan', '--root', 'src']);
    expect(stale.code).toBe(6);
    expect(stale.stderr).toContain('error: node1: the plan was made when nothing was deployed, but the state now records a deployment');
  }, 600_000);

  it('a connection lost during apply: the host finishes it, and the next apply converges', async () => {
    writeTarget('  b = Steady\n');
    expect((await mclc(['plan', 'src', '--out', 'lab2.plan'])).code).toBe(0);
    let cut = false;
    let lost: Run;
    try {
      lost = await mclc(['apply', 'lab2.plan', '--root', 'src'], (text) => {
        // Once the host is at work (its events arrive), the host's network goes.
        if (!cut && /templates ready/.test(text)) {
          cut = true;
          sim.link(node1, false);
        }
      });
    } finally {
      sim.link(node1, true);
    }
    expect(cut).toBe(true);
    expect(lost.code).toBe(5);
    expect(lost.stderr).toContain('error: lost the connection to node1 during apply');
    expect(lost.stderr).toContain('hint: The host goes on with what it was given');
    // The host finished the apply on its own.
    const st = await until('the host to finish the apply', async () => {
      const s = await hostStatus().catch(() => undefined);
      return s?.serial === 2 ? s : undefined;
    });
    expect(st.instances.map((i: { id: string }) => i.id).sort()).toEqual(['a', 'b']);
    // The same sources planned again: nothing to do.
    const plan = await mclc(['plan', 'src', '--out', 'lab3.plan', '--detailed-exitcode']);
    expect(plan.code, plan.stdout).toBe(0);
    const converged = await mclc(['apply', 'lab3.plan', '--root', 'src']);
    expect(converged.code).toBe(0);
    expect(converged.stdout).toContain('0 created, 0 replaced, 0 destroyed, 2 unchanged');
  }, 600_000);

  it("two runners applying at once are serialised by the host's lock", async () => {
    // Two different plans made against the same state of the host.
    writeTarget();
    expect((await mclc(['plan', 'src', '--out', 'lab4.plan'])).code).toBe(0);
    writeTarget('  b = Steady\n  c = Steady\n');
    expect((await mclc(['plan', 'src', '--out', 'lab5.plan'])).code).toBe(0);
    const [x, y] = await Promise.all([mclc(['apply', 'lab4.plan', '--root', 'src']), mclc(['apply', 'lab5.plan', '--root', 'src'])]);
    const codes = [x.code, y.code].sort();
    // One applies; the other finds the lock taken, or (when it came second) the plan stale.
    expect(codes).toEqual([0, 6]);
    expect((x.code === 6 ? x : y).stderr).toMatch(/error: node1: .*(lock|the plan was made against state)/i);
  }, 600_000);

  it('destroy leaves nothing running on the host', async () => {
    const d = await mclc(['destroy', '--host', url()]);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toContain('Destroy complete');
    expect((await hostStatus()).deployed).toBe(false);
    await until('every process of the deployment to end', async () => (hostProcesses().length === 0 ? true : undefined), 30_000);
  }, 300_000);

  it('applies one system over two hosts, each host running the instances placed on it', async () => {
    const two = (h: SimHost) => `ssh://${h.name}${h.workspace}-two`;
    const [h1, h2] = sim.hosts;
    writeFileSync(
      join(src, 'main.mcl'),
      readFileSync(join(__dirname, 'fixtures/remote/main.mcl'), 'utf8').replace('  a = Steady\n', '  a = Steady\n  b = Steady\n') +
        `\ntarget node1 { backend kvm  memory 2GiB  vcpus 2  overcommit 4  host "${two(h1)}" }\n` +
        `target node2 { backend kvm  memory 2GiB  vcpus 2  overcommit 4  host "${two(h2)}" }\n` +
        `deploy Lab to [node1, node2] {\n  place b on node2\n}\n`,
    );
    const plan = await mclc(['plan', 'src', '--out', 'two.plan']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/Placement:\n  node1 .*: a\n  node2 .*: b/);
    const applied = await mclc(['apply', 'two.plan', '--root', 'src']);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stderr).toMatch(/Target node1 [^]*Applying main\.Lab on node1 [^]*Target node2 [^]*Applying main\.Lab on node2/);
    const status = async (h: SimHost) => JSON.parse((await mclc(['status', '--host', two(h), '--json'])).stdout);
    expect((await status(h1)).instances.map((i: { id: string }) => i.id)).toEqual(['a']);
    expect((await status(h2)).instances.map((i: { id: string }) => i.id)).toEqual(['b']);
    // Planned again, nothing changes; the plan is made against both hosts' states.
    const again = await mclc(['plan', 'src', '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ has_changes: false, prior_states: { node1: { serial: expect.any(Number) }, node2: { serial: expect.any(Number) } } });
    for (const h of [h1, h2]) expect((await mclc(['destroy', '--host', two(h)])).code).toBe(0);
  }, 900_000);
});
