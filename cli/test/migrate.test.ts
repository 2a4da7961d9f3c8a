// `mclc migrate` against fakes: the hosts' side (remote-lifecycle.ts: their
// states, link identity, migrate-in and migrate-out) and the KVM backend
// module, so that every refusal, the order of the steps, what each step is
// given and what is printed are checked in seconds. The real move between two
// hosts over SSH is migrate.vm.test.ts.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { digestMismatches, planDigest, planPart, prettyJson, type DeploymentState, type Plan } from '@mcl/plan';
import type { BackendEvent, MigrateInOptions, MigrateOutOptions, StatusReport } from '@mcl/plan/backend';
import { nativeSha256 } from '@mcl/compiler/node-host';
import { run } from '../src/cli';
import { compileWorkspace } from '../src/compile';
import { resolveWorkspace } from '../src/workspace';
import { renderStatus } from '../src/commands/lifecycle';
import { movedClones, renderDrift } from '../src/plan-render';
import { hostMigrateStep } from '../src/commands/migrate';
import { MCLC_VERSION } from '../src/version';
import { captureContext } from './capture';

const CERT = (who: string) => `-----BEGIN CERTIFICATE-----\n${who}\n-----END CERTIFICATE-----\n`;

const calls: { fn: string; args: unknown[] }[] = [];
/** The states the fake hosts hold, by host address. */
const states = new Map<string, DeploymentState | undefined>();
let failOut: string | undefined;
let failIn: string | undefined;

const result = { instance: 'store', clone: 0, from: 'node2', to: 'node1', mode: 'precopy', total_ms: 8400, downtime_ms: 520, hold_ms: 3800, bytes_sent: 92_274_688, source_private_bytes: 48_234_496, attempts: 1 };

vi.mock('../src/commands/remote-lifecycle', () => ({
  async remoteState(_ctx: unknown, url: string) {
    calls.push({ fn: 'state', args: [url] });
    return states.get(url);
  },
  async remoteLinkIdentity(_ctx: unknown, url: string, backend: string, name: string) {
    calls.push({ fn: 'link-identity', args: [url, backend, name] });
    return CERT(name);
  },
  async remoteMigrateIn(_ctx: unknown, url: string, backend: string, m: unknown, o: { onEvent: (e: BackendEvent) => void }) {
    calls.push({ fn: 'migrate-in', args: [url, backend, m] });
    o.onEvent({ type: 'phase', phase: 'template', action: 'start', message: 'building template busybox-128m-1c-4p' });
    if (failIn) throw Object.assign(new (await import('../src/exit')).CliError(failIn, 5));
    return { port: 40123, cert: CERT('node1'), template_built: true, template_ms: 12_100 };
  },
  async remoteMigrateOut(_ctx: unknown, url: string, backend: string, m: unknown, o: { onEvent: (e: BackendEvent) => void }) {
    calls.push({ fn: 'migrate-out', args: [url, backend, m] });
    o.onEvent({ type: 'phase', phase: 'precopy', action: 'progress', message: 'precopy round 1: 64 MiB left' });
    o.onEvent({ type: 'phase', phase: 'switchover', action: 'done', message: 'switched over; held 3 frames' });
    if (failOut) throw new (await import('../src/exit')).CliError(failOut, 5);
    return result;
  },
}));

// The KVM backend as a host's mclc sees it (host side of `__host migrate-in|migrate-out`).
vi.mock('@mcl/backend-kvm', () => ({
  async apply() {},
  async destroy() {},
  async status() {},
  async logs() {},
  async doctor() {
    return { checks: [] };
  },
  async runSupervisor() {},
  async linkIdentity() {
    return { cert: CERT('here') };
  },
  async linkConfig() {
    return { changed: false };
  },
  async migrateIn(opts: MigrateInOptions, onEvent: (e: BackendEvent) => void) {
    calls.push({ fn: 'backend.migrateIn', args: [opts] });
    onEvent({ type: 'phase', phase: 'incoming', action: 'done', message: 'waiting for the clone' });
    return { port: 40999, cert: CERT('dest'), template_built: false, template_ms: 0 };
  },
  async migrateOut(opts: MigrateOutOptions, onEvent: (e: BackendEvent) => void) {
    calls.push({ fn: 'backend.migrateOut', args: [opts] });
    onEvent({ type: 'phase', phase: 'precopy', action: 'progress', message: 'round 1' });
    return result;
  },
}));

let dir: string;
let plan: Plan;
const node1 = 'ssh://mcl@10.9.0.1/srv/mcl/pair';
const node2 = 'ssh://mcl@10.9.0.2/srv/mcl/pair';

/** The fixture system of cross-host.vm.test.ts, over two targets with hosts (store on node2) and a replicated instance. */
function writeSources(root: string, node1Memory = '2GiB', deploy = 'to [node1, node2]'): void {
  mkdirSync(join(root, 'guest'), { recursive: true });
  for (const f of ['store.sh', 'asker.sh', 'rep.sh']) writeFileSync(join(root, 'guest', f), '#!/bin/sh\n');
  writeFileSync(
    join(root, 'main.mcl'),
    `import std.kv.{Kv}
component Store { memory 128MiB  provide kv: Kv  program { script "guest/store.sh" } }
component Asker { memory 128MiB  require store: Kv  program { script "guest/asker.sh" } }
component Rep { memory 128MiB  replicas 3  program { script "guest/rep.sh" } }
system Pair {
  asker = Asker
  store = Store
  rep = Rep
  connect asker.store -> store.kv
}
target node1 { backend kvm  memory ${node1Memory}  vcpus 2  overcommit 4  host "${node1}" }
target node2 { backend kvm  memory 2GiB  vcpus 2  overcommit 4  host "${node2}" }
deploy Pair ${deploy}${deploy.includes('[') ? ' {\n  place asker on node1\n  place store on node2\n  place rep on node2\n}' : ''}
`,
  );
}

function compilePlan(root: string): Plan {
  const out = compileWorkspace({ workspace: resolveWorkspace([root], { cwd: root }), emitPlan: true, priorStates: { node1: null, node2: null } });
  if (!out.plan) throw new Error(out.diagnostics.map((d) => d.message).join('\n'));
  return out.plan;
}

/** The state a host records after applying its part of `p`. */
function partState(p: Plan, target: string, extra: Partial<DeploymentState> = {}): DeploymentState {
  const part = planPart(p, target, nativeSha256)!;
  return { format_version: '1.0', lineage: `lineage-${target}`, serial: 2, backend: 'kvm', plan_digest: part.digests.plan, system: part.system, instances: part.instances, channels: part.channels, exposures: part.exposures, ...extra };
}

async function mclc(args: string[]) {
  const ctx = captureContext(dir);
  const code = await run(args, ctx);
  return { code, stdout: ctx.stdout, stderr: ctx.stderr };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mclc-migrate-'));
  writeSources(dir);
  plan = compilePlan(dir);
  writeFileSync(join(dir, 'pair.plan'), prettyJson(plan));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(() => {
  calls.length = 0;
  failIn = failOut = undefined;
  states.set(node1, partState(plan, 'node1'));
  states.set(node2, partState(plan, 'node2'));
});

describe('mclc migrate: the move, step by step', () => {
  it('gets the source\'s certificate, prepares the destination with it, then moves the clone from the source', async () => {
    const r = await mclc(['migrate', 'store', '--to', 'node1', '--plan', 'pair.plan']);
    expect(r.code, r.stderr).toBe(0);
    const steps = calls.map((c) => `${c.fn} ${c.args[0]}`);
    expect(steps).toEqual([`state ${node1}`, `state ${node2}`, `link-identity ${node2}`, `migrate-in ${node1}`, `migrate-out ${node2}`]);
    const dest = planPart(plan, 'node1', nativeSha256)!;
    expect(calls[3].args[2]).toEqual({ planDigest: dest.digests.plan, instance: 'store', clone: 0, target: 'node1', from: { target: 'node2', cert: CERT('node2') }, listen: { host: '10.9.0.1', port: 0 }, mode: 'precopy' });
    expect(calls[4].args[2]).toEqual({ instance: 'store', clone: 0, to: { target: 'node1', host: '10.9.0.1', port: 40123, cert: CERT('node1') }, mode: 'precopy' });
    // Progress as the events arrive, then the summary with the figures.
    expect(r.stderr).toContain('store#0: moving from node2 to node1 (precopy)');
    expect(r.stderr).toContain('precopy round 1: 64 MiB left');
    expect(r.stderr).toContain('store#0: template built on node1 in 12.1s');
    expect(r.stdout).toContain('Migration complete: store#0 runs on node1 (moved from node2, precopy) in 8.40s.');
    expect(r.stdout).toContain('downtime 0.52s (guest stopped), traffic held 3.80s');
    expect(r.stdout).toContain('sent 88MiB between the hosts for 46MiB of private memory on node2.');
    expect(r.stdout).toContain('the template was built on node1 first (12.1s)');
    expect(r.stdout).toMatch(/took \d+\.\d+s in all \(checks \d+\.\d+s, the destination ready in \d+\.\d+s\)/);
  });

  it('--json: events as JSON lines and one result line with the figures', async () => {
    const r = await mclc(['migrate', 'store.0', '--to', 'node1', '--plan', 'pair.plan', '--json', '--mode', 'pages']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.slice(0, -1).every((l) => typeof l.message === 'string' && l.type === 'phase')).toBe(true);
    expect(lines.at(-1)).toMatchObject({ type: 'result', instance: 'store', clone: 0, from: 'node2', to: 'node1', downtime_ms: 520, bytes_sent: 92_274_688, template_built: true, template_ms: 12_100 });
    for (const k of ['elapsed_ms', 'check_ms', 'prepare_ms']) expect(typeof lines.at(-1)[k]).toBe('number');
    expect(lines.at(-1).check_ms + lines.at(-1).prepare_ms).toBeLessThanOrEqual(lines.at(-1).elapsed_ms);
    expect((calls[4].args[2] as { mode: string }).mode).toBe('pages');
    expect(r.stderr).toBe('');
  });

  it('a failed move names the host and the step and says the clone still runs on the source (exit 5)', async () => {
    failOut = 'the destination QEMU exited during precopy';
    const r = await mclc(['migrate', 'store', '--to', 'node1', '--plan', 'pair.plan']);
    expect(r.code).toBe(5);
    expect(r.stderr).toContain(`error: moving store#0 from target node2 (${node2}) to node1 failed; store#0 still runs on node2: the destination QEMU exited during precopy`);
    failOut = undefined;
    failIn = 'no space left for the template';
    calls.length = 0;
    const j = await mclc(['migrate', 'store', '--to', 'node1', '--plan', 'pair.plan', '--json']);
    expect(j.code).toBe(5);
    expect(calls.some((c) => c.fn === 'migrate-out')).toBe(false);
    const last = JSON.parse(j.stdout.trim().split('\n').at(-1)!);
    expect(last).toMatchObject({ type: 'error' });
    expect(last.message).toContain(`cannot prepare target node1 (${node1}) to receive store#0; nothing was moved, it runs on node2: no space left for the template`);
  });
});

describe('mclc migrate: a target without host (this machine)', () => {
  it('moves a clone from this machine: its identity and the move by the backend here, the destination over SSH', async () => {
    const ws = mkdtempSync(join(tmpdir(), 'mclc-migrate-local-'));
    try {
      writeSources(ws);
      // node1 runs where mclc runs: no host.
      writeFileSync(join(ws, 'main.mcl'), readFileSync(join(ws, 'main.mcl'), 'utf8').replace(`  host "${node1}" }`, ' }'));
      const p = compilePlan(ws);
      writeFileSync(join(ws, 'local.plan'), prettyJson(p));
      mkdirSync(join(ws, '.mcl'));
      writeFileSync(join(ws, '.mcl', 'state.json'), prettyJson(partState(p, 'node1')));
      states.set(node2, partState(p, 'node2'));
      const ctx = captureContext(ws);
      const code = await run(['migrate', 'asker', '--to', 'node2', '--plan', 'local.plan', '--root', ws], ctx);
      expect(code, ctx.stderr).toBe(0);
      expect(calls.map((c) => c.fn)).toEqual(['state', 'migrate-in', 'backend.migrateOut']);
      expect(calls[1].args[2]).toMatchObject({ instance: 'asker', from: { target: 'node1', cert: CERT('here') }, listen: { host: '10.9.0.2', port: 0 } });
      expect(calls[2].args[0]).toMatchObject({ workspace: ws, instance: 'asker', clone: 0, to: { target: 'node2', host: '10.9.0.2', port: 40123 } });
      expect(ctx.stderr).toContain('asker#0: moving from node1 to node2 (precopy)');
      // The store cannot move here: this machine has no address node2 could send it to.
      const back = captureContext(ws);
      expect(await run(['migrate', 'store', '--to', 'node1', '--plan', 'local.plan', '--root', ws], back)).toBe(1);
      expect(back.stderr).toContain('error: target node1 runs on the machine mclc runs on, which has no address that target node2 could send the clone to');
      // With a link address it can: the destination listens there.
      calls.length = 0;
      writeFileSync(join(ws, 'main.mcl'), readFileSync(join(ws, 'main.mcl'), 'utf8').replace('target node1 { backend kvm', 'target node1 { link "10.9.0.9:7412"  backend kvm'));
      const linked = compilePlan(ws);
      writeFileSync(join(ws, 'linked.plan'), prettyJson(linked));
      writeFileSync(join(ws, '.mcl', 'state.json'), prettyJson(partState(linked, 'node1')));
      states.set(node2, partState(linked, 'node2'));
      const there = captureContext(ws);
      expect(await run(['migrate', 'store', '--to', 'node1', '--plan', 'linked.plan', '--root', ws], there), there.stderr).toBe(0);
      expect(calls.find((c) => c.fn === 'backend.migrateIn')?.args[0]).toMatchObject({ instance: 'store', listen: { host: '10.9.0.9', port: 0 } });
      // A plan file whose link address is malformed (with its digest made to match) is refused naming the value, not
      // as a target without an address.
      const bad: Plan = JSON.parse(JSON.stringify(linked));
      bad.targets!.find((t) => t.name === 'node1')!.link = '10.9.0.9:99999';
      bad.digests.plan = planDigest(bad, nativeSha256);
      expect(digestMismatches(bad, nativeSha256)).toEqual([]);
      writeFileSync(join(ws, 'bad.plan'), prettyJson(bad));
      const refused = captureContext(ws);
      expect(await run(['migrate', 'store', '--to', 'node1', '--plan', 'bad.plan', '--root', ws], refused)).toBe(1);
      expect(refused.stderr).toContain('error: target node1 has the link "10.9.0.9:99999"');
      expect(refused.stderr).not.toContain('runs on the machine mclc runs on');
    } finally {
      rmSync(ws, { recursive: true, force: true });
    }
  });
});

describe('mclc migrate: refusals before any host is changed', () => {
  const refused = async (args: string[], code: number, ...texts: string[]) => {
    const r = await mclc(['migrate', ...args]);
    expect(r.code, r.stderr).toBe(code);
    for (const t of texts) expect(r.stderr).toContain(t);
    // Nothing was asked of a host but its state.
    expect(calls.filter((c) => c.fn !== 'state')).toEqual([]);
    return r;
  };

  it('an unknown instance, listing the known ones', async () => {
    await refused(['nope', '--to', 'node1', '--plan', 'pair.plan'], 1, 'error: the plan has no instance `nope`', 'hint: Its instances are asker, rep, store.');
    await refused(['nope.2', '--to', 'node1', '--plan', 'pair.plan'], 1, 'the plan has no instance `nope`');
  });

  it('a clone left out of an instance with several, and a clone it does not have, listing its clones', async () => {
    await refused(['rep', '--to', 'node1', '--plan', 'pair.plan'], 1, 'error: rep has 3 clones: say which one to move', 'hint: Name one of rep.0, rep.1, rep.2.');
    await refused(['rep.3', '--to', 'node1', '--plan', 'pair.plan'], 1, 'error: rep has no clone 3', 'Its clones are rep.0, rep.1, rep.2.');
    await refused(['rep[7]', '--to', 'node1', '--plan', 'pair.plan'], 1, 'rep has no clone 7');
  });

  it('a target that is not the deployment\'s, listing them; and the target the clone is on', async () => {
    await refused(['store', '--to', 'node9', '--plan', 'pair.plan'], 1, 'error: `node9` is not a target of the deployment', `hint: Its targets are node1 (${node1}), node2 (${node2}).`);
    await refused(['store', '--to', 'node2', '--plan', 'pair.plan'], 1, 'error: store#0 already runs on node2', 'name another target: node1');
  });

  it('a destination whose part of the plan cannot run the clone (no channel to it, no instance of its template)', async () => {
    await refused(['rep.1', '--to', 'node1', '--plan', 'pair.plan'], 1, 'error: target node1 cannot run rep#1: its part of the plan has no channel to rep', 'place such an instance on node1');
  });

  it('a clone already moved: there, or elsewhere', async () => {
    states.set(node2, partState(plan, 'node2', { moved: [{ instance: 'store', clone: 0, to: 'node1', at: '2026-12-06T09:00:00.000Z' }] }));
    await refused(['store', '--to', 'node1', '--plan', 'pair.plan'], 1, 'error: store#0 already runs on node1 (moved by mclc migrate at 2026-12-06T09:00:00.000Z)');
  });

  it('a host that runs another plan, or none (exit 6)', async () => {
    states.set(node1, { ...partState(plan, 'node1'), plan_digest: 'f'.repeat(64) });
    await refused(['store', '--to', 'node1', '--plan', 'pair.plan'], 6, `error: target node1 (${node1}) runs another plan than pair.plan (its part ffffffffffff`);
    states.set(node1, undefined);
    await refused(['store', '--to', 'node1', '--plan', 'pair.plan'], 6, `error: nothing of this plan is deployed on target node1 (${node1})`, 'hint: Apply the plan first');
  });

  it('a destination without room, saying what is used and what is free', async () => {
    const small = mkdtempSync(join(tmpdir(), 'mclc-migrate-small-'));
    try {
      // node1 holds asker (its 128 MiB template and its clone's 44.8 MiB); the store shares the template and needs 44.8 MiB more.
      writeSources(small, '200MiB');
      const fixed = compilePlan(small);
      writeFileSync(join(dir, 'small.plan'), prettyJson(fixed));
      states.set(node1, partState(fixed, 'node1'));
      states.set(node2, partState(fixed, 'node2'));
      await refused(['store', '--to', 'node1', '--plan', 'small.plan'], 1, `error: target node1 (${node1}) has no room for store#0: memory: store#0 needs 44.8MiB, 172.8MiB of 200MiB is used, 27.2MiB free`, 'hint: Move it to a target with room');
    } finally {
      rmSync(small, { recursive: true, force: true });
    }
  });

  it('a plan of one target, no plan, no --to, an unknown mode', async () => {
    await refused(['store', '--to', 'node1'], 1, 'error: mclc migrate needs the plan that was applied (--plan FILE)');
    await refused(['store', '--plan', 'pair.plan'], 1, 'error: mclc migrate needs --to TARGET');
    const r = await mclc(['migrate', 'store', '--to', 'node1', '--plan', 'pair.plan', '--mode', 'fast']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("argument 'fast' is invalid");
    const single = mkdtempSync(join(tmpdir(), 'mclc-migrate-one-'));
    try {
      writeSources(single, '2GiB', 'to node1');
      const out = compileWorkspace({ workspace: resolveWorkspace([single], { cwd: single }), emitPlan: true });
      writeFileSync(join(dir, 'one.plan'), prettyJson(out.plan!));
    } finally {
      rmSync(single, { recursive: true, force: true });
    }
    await refused(['store', '--to', 'node1', '--plan', 'one.plan'], 1, 'error: the plan deploys main.Pair to one target (node1): there is no other host to move a clone to');
  });

  it('a backend that cannot move clones (Xen), before any host is reached', async () => {
    const { withDigests } = await import('../../plan/test/fixtures');
    const xen = withDigests({ ...plan, target: { ...plan.target, backend: 'xen' }, targets: plan.targets!.map((t) => ({ ...t, backend: 'xen' as const })) } as Plan);
    writeFileSync(join(dir, 'xen.plan'), prettyJson(xen));
    const r = await refused(['store', '--to', 'node1', '--plan', 'xen.plan'], 5, 'error: the Xen backend cannot move a running clone to another host', 'Live migration is built for the KVM backend');
    expect(calls).toEqual([]);
    expect(r.stdout).toBe('');
  });
});

describe('mclc __host migrate-in|migrate-out (the host side)', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'mclc-migrate-host-'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  /** Runs the host side's step in-process (what `__host` runs after reading standard input), with `stdin` as what the client sent. */
  async function host(command: 'migrate-in' | 'migrate-out', options: Record<string, string>, stdin: string) {
    const ctx = captureContext(root);
    const code = await hostMigrateStep(ctx, command, options, stdin, { root, json: true });
    return { code, lines: ctx.stdout.trim().split('\n').map((l) => JSON.parse(l)) };
  }

  /** Runs the built `mclc __host` as ssh would on the host, with `stdin` on its standard input. */
  function hostProcess(command: string, options: Record<string, string>, stdin: string) {
    const r = spawnSync(process.execPath, [join(__dirname, '..', 'dist', 'mclc.mjs'), '__host', '--client-version', MCLC_VERSION, '--root', root, command, JSON.stringify(options)], { input: stdin, encoding: 'utf8' });
    return { code: r.status, lines: r.stdout.trim().split('\n').map((l) => JSON.parse(l)) };
  }

  it('migrate-in: the options and the source\'s certificate go to the backend; its events, then its port and certificate, come back', async () => {
    const digest = 'a'.repeat(64);
    const r = await host('migrate-in', { backend: 'kvm', planDigest: digest, instance: 'store', clone: '0', target: 'node1', from: 'node2', listen: '10.9.0.1', port: '0', mode: 'precopy' }, JSON.stringify({ cert: CERT('node2') }));
    expect(r.code).toBe(0);
    const opts = calls.find((c) => c.fn === 'backend.migrateIn')!.args[0] as MigrateInOptions;
    expect(opts).toMatchObject({ planDigest: digest, instance: 'store', clone: 0, target: 'node1', from: { target: 'node2', cert: CERT('node2') }, listen: { host: '10.9.0.1', port: 0 }, mode: 'precopy' });
    expect(opts.workspace).toBe(root);
    expect(r.lines[0]).toMatchObject({ type: 'phase', message: 'waiting for the clone' });
    expect(r.lines[1]).toEqual({ type: 'migrate-in', port: 40999, cert: CERT('dest'), template_built: false, template_ms: 0 });
  });

  it('migrate-out: streams the events and ends with the result', async () => {
    const r = await host('migrate-out', { backend: 'kvm', instance: 'store', clone: '0', to: 'node1', host: '10.9.0.1', port: '40999', mode: 'pages' }, JSON.stringify({ cert: CERT('dest') }));
    expect(r.code).toBe(0);
    expect(calls.find((c) => c.fn === 'backend.migrateOut')!.args[0]).toMatchObject({ instance: 'store', clone: 0, to: { target: 'node1', host: '10.9.0.1', port: 40999, cert: CERT('dest') }, mode: 'pages' });
    expect(r.lines.at(-1)).toMatchObject({ type: 'result', ...result });
  });

  it('refuses options that are malformed, a missing certificate and an oversized input, before the backend is asked', () => {
    const cert = JSON.stringify({ cert: CERT('dest') });
    const ok = { backend: 'kvm', instance: 'store', clone: '0', to: 'node1', host: 'h', port: '1', mode: 'precopy' };
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ ...ok, clone: 'x' }, cert, /no valid clone/],
      [{ ...ok, port: '0' }, cert, /port out of range/],
      [{ ...ok, host: 'h; rm -rf /' }, cert, /no valid destination address/],
      [{ ...ok, mode: 'all' }, cert, /no valid mode/],
      [ok, '{"cert":"x"}', /no certificate/],
      [ok, 'x'.repeat(200_000), /larger than/],
    ];
    for (const [opts, stdin, message] of cases) {
      const r = hostProcess('migrate-out', opts, stdin);
      expect(r.code, JSON.stringify(r.lines)).toBe(1);
      expect(r.lines[0]).toMatchObject({ type: 'host' });
      expect(r.lines.at(-1).type).toBe('error');
      expect(r.lines.at(-1).message).toMatch(message);
    }
  });
});

describe('status and plan show a moved clone', () => {
  const report = (): StatusReport =>
    ({
      deployed: true,
      system: 'Pair',
      lineage: 'l',
      serial: 3,
      plan_digest: 'd',
      supervisor: { running: true, pid: 42 },
      instances: [{ id: 'store', component: 'Store', mode: 'single', health: 'healthy', clones: [{ index: 0, state: 'running', pid: 4242, restarts: 0, moved_to: { target: 'node1', at: '2026-12-06T09:00:00.000Z' } }] }],
      channels: [],
      exposures: [],
      unwired_violations: [],
      totals: { clones: 1, rss_bytes: 0, pss_bytes: 0, private_bytes: 0 },
    }) as StatusReport;

  it('the home host shows where a moved clone runs, without a pid of its own', () => {
    const text = renderStatus(report(), captureContext());
    expect(text).toContain('    #0 running on node1, moved by mclc migrate 2026-12-06T09:00:00.000Z\n');
    expect(text).not.toContain('pid 4242');
  });

  it('the destination shows the clones it keeps for other hosts', () => {
    const r = { ...report(), instances: [], kept: [{ instance: 'store', clone: 0, from: 'node2', pid: 777, state: 'running' as const }] };
    const text = renderStatus(r, captureContext());
    expect(text).toContain('Kept here (moved from other hosts by mclc migrate):\n  store#0 from node2: running pid 777');
    expect(renderStatus(report(), captureContext())).not.toContain('Kept here');
  });

  it('plan lists a state\'s moved clones as drift, not as changes', () => {
    const drift = movedClones(new Map([['node2', partState(plan, 'node2', { moved: [{ instance: 'store', clone: 0, to: 'node1', at: 'T' }] })], ['node1', undefined]]));
    expect(drift).toEqual([{ instance: 'store', clone: 0, from: 'node2', to: 'node1', at: 'T' }]);
    expect(renderDrift(drift, captureContext().outStyle)).toEqual([expect.stringContaining('Drift'), '  ~ store[0] moved: node2 -> node1, by mclc migrate at T']);
    expect(renderDrift([], captureContext().outStyle)).toEqual([]);
  });
});
