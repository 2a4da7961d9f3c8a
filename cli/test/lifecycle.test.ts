// The lifecycle commands against a fake backend module: option passing,
// event and result output, and the mapping of backend failures to exit codes.

import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { diffPlan, planDigest, prettyJson, type Plan } from '@mcl/plan';
import { planChecks } from '@mcl/compiler';
import type { ApplyOptions, BackendEvent, BackendOptions, StatusReport } from '@mcl/plan/backend';
import { run } from '../src/cli';
import { webstackPlan, stateOf, withDigests } from '../../plan/test/fixtures';
import { captureContext } from './capture';
import { signPlan, signaturePath, verifyPlanSignature } from '../src/signing';

const REPO = join(__dirname, '..', '..');

const calls: { fn: string; args: unknown[] }[] = [];
let behaviour: 'ok' | 'stale' | 'locked' | 'failure' | 'usage' | 'crash' = 'ok';

function fail(): void {
  if (behaviour === 'ok') return;
  if (behaviour === 'crash') throw new TypeError('cannot read properties of undefined');
  throw Object.assign(new Error(`fake ${behaviour}`), { kind: behaviour, hint: `hint for ${behaviour}` });
}

const status: StatusReport = {
  deployed: true,
  system: 'WebStack',
  lineage: 'L',
  serial: 4,
  plan_digest: 'd',
  supervisor: { running: true, pid: 4242 },
  accelerator: { name: 'tcg', note: 'KVM does not boot guests here' },
  instances: [
    {
      id: 'app',
      component: 'App',
      mode: 'single',
      health: 'healthy',
      clones: [{ index: 0, state: 'running', pid: 77, restarts: 1, rss_bytes: 78643200, pss_bytes: 49283072, private_bytes: 10485760, cpu_ms: 1500 }],
    },
  ],
  channels: [
    {
      id: 'web.backend->app.api',
      protocol: 'shop.Api',
      frames_forward: 10,
      frames_backward: 9,
      bytes_forward: 2048,
      bytes_backward: 4096,
      violations: 2,
      recent_violations: [
        { time: '2026-01-01T00:00:00Z', kind: 'size', detail: 'frame of 2 MiB exceeds 1 MiB' },
        {
          time: '2026-01-01T00:00:02Z',
          kind: 'order_incomplete',
          detail: 'the session ended (the port disconnected) in state 1 of the protocol order, which is not accepting; it still needed: logout',
          instance: 'web',
          clone: 0,
        },
      ],
    },
  ],
  exposures: [{ host_port: 8080, instance: 'web', port: 'http', listening: true, connections_total: 3, connections_open: 0 }],
  unwired_violations: [{ time: '2026-01-01T00:00:01Z', kind: 'unwired', detail: 'write to port slot 5', instance: 'db', clone: 0 }],
  totals: { clones: 1, rss_bytes: 78643200, pss_bytes: 49283072, private_bytes: 10485760 },
  helpers: [
    { role: 'zygote', template: 'busybox-128m-1c-4p', pid: 70, rss_bytes: 23068672, pss_bytes: 6291456, private_bytes: 838860 },
    { role: 'waiting', template: 'busybox-128m-1c-4p', pid: 71, rss_bytes: 23068672, pss_bytes: 13631488, private_bytes: 6920601 },
  ],
};

vi.mock('@mcl/backend-kvm', () => ({
  async apply(plan: unknown, opts: ApplyOptions, onEvent: (e: BackendEvent) => void) {
    calls.push({ fn: 'apply', args: [plan, opts] });
    onEvent({ type: 'phase', phase: 'instances', action: 'start', message: 'starting instances' });
    onEvent({ type: 'instance', instance: 'web', clone: 1, action: 'ready', message: 'ready in 70 ms' });
    onEvent({ type: 'debug', message: 'qmp says hi' });
    fail();
    const s = stateOf(plan as never, 1);
    return { state: s, created: ['app', 'db', 'web'], replaced: [], deleted: [], unchanged: [], exposures: [{ host_port: 8080, instance: 'web', port: 'http' }], accelerator: { name: 'tcg' }, elapsed_ms: 4200 };
  },
  async destroy(opts: BackendOptions) {
    calls.push({ fn: 'destroy', args: [opts] });
    fail();
    return { destroyed: ['app'], state: null, elapsed_ms: 10 };
  },
  async status(opts: BackendOptions) {
    calls.push({ fn: 'status', args: [opts] });
    fail();
    return status;
  },
  async logs(id: string, opts: unknown, onLine: (l: unknown) => void) {
    calls.push({ fn: 'logs', args: [id, opts] });
    if (id !== 'app') throw Object.assign(new Error(`no instance "${id}" in the deployment`), { kind: 'usage' });
    onLine({ instance: 'app', clone: 0, stream: 'program', text: 'listening\n' });
  },
  async doctor() {
    fail();
    return { checks: [{ id: 'qemu', status: 'ok', summary: 'QEMU 7.2' }, { id: 'kvm', status: 'warn', summary: 'KVM hangs', hint: 'TCG is used' }] };
  },
  async runSupervisor() {},
}));

// The Xen backend's row: every call recorded with its backend's name, so a test sees which row answered.
vi.mock('@mcl/backend-xen', () => ({
  async apply(plan: unknown, opts: ApplyOptions) {
    calls.push({ fn: 'xen.apply', args: [plan, opts] });
    return { state: stateOf(plan as never, 1), created: [], replaced: [], deleted: [], unchanged: [], exposures: [], accelerator: { name: 'xen 4.17.7 (restore)' }, elapsed_ms: 1 };
  },
  async destroy(opts: BackendOptions) {
    calls.push({ fn: 'xen.destroy', args: [opts] });
    return { destroyed: [], state: null, elapsed_ms: 1 };
  },
  async status(opts: BackendOptions) {
    calls.push({ fn: 'xen.status', args: [opts] });
    return status;
  },
  async logs() {},
  async doctor() {
    return { checks: [{ id: 'xen', status: 'warn', summary: 'not a Xen dom0' }] };
  },
  async runSupervisor(d: string) {
    calls.push({ fn: 'xen.runSupervisor', args: [d] });
  },
}));

const dir = mkdtempSync(join(tmpdir(), 'mclc-lifecycle-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * The fixture plan as the compiler would write it: its policy rules, the
 * checks and resources the checker finds for them, and every digest (apply
 * verifies them all).
 */
function checkedPlan(mutate?: (p: Plan) => void): Plan {
  const plan = webstackPlan();
  // The fixture's labels let secret data reach the public tier; the checks must pass.
  for (const i of plan.instances) delete i.label;
  mutate?.(plan);
  plan.policies = {
    rules: [{ kind: 'exposed_only', scope: '', ports: [{ instance: 'web', port: 'http' }] }],
    labels: { labels: ['internal', 'public', 'secret'], edges: [['public', 'internal'], ['internal', 'secret']] },
  };
  Object.assign(plan, planChecks(plan));
  return withDigests(plan);
}

function writePlan(plan: Plan): string {
  const path = join(dir, `p${Math.random().toString(36).slice(2)}.plan`);
  writeFileSync(path, prettyJson(plan));
  return path;
}

const planFile = (mutate?: (p: Plan) => void): string => writePlan(checkedPlan(mutate));

beforeEach(() => {
  calls.length = 0;
  behaviour = 'ok';
});

describe('apply', () => {
  it('passes the plan and options, prints events on stderr and the result on stdout', async () => {
    const ctx = captureContext(dir);
    const code = await run(['apply', planFile(), '--root', dir, '--lock-timeout', '2s', '--replace', 'db'], ctx);
    expect(code).toBe(0);
    const opts = calls[0].args[1] as ApplyOptions;
    expect(opts.workspace).toBe(dir);
    expect(opts.stateFile).toBe(join(dir, '.mcl', 'state.json'));
    expect(opts.lockTimeoutMs).toBe(2000);
    expect(opts.replace).toEqual(['db']);
    expect(opts.readyTimeoutMs).toBe(60000);
    expect(opts.supervisorCommand[0]).toBe(process.execPath);
    expect(ctx.stderr).toContain('Applying WebStack to .: Plan: 3 to add, 0 to replace, 0 to destroy.');
    expect(ctx.stderr).toContain('web#1: ready in 70 ms');
    expect(ctx.stderr).not.toContain('qmp says hi');
    expect(ctx.stdout).toContain('Apply complete: 3 created, 0 replaced, 0 destroyed, 0 unchanged in 4.2s (accelerator tcg).');
    expect(ctx.stdout).toContain('exposed: tcp 8080 -> web.http');
    // The fixture's source file is not in the workspace.
    expect(ctx.stderr).toContain("warning: none of the plan's sources (webstack.mcl) is under .;");
  });

  it('does not warn when the workspace holds the plan\'s sources', async () => {
    writeFileSync(join(dir, 'webstack.mcl'), '');
    const ctx = captureContext(dir);
    expect(await run(['apply', planFile()], ctx)).toBe(0);
    expect(ctx.stderr).not.toContain('warning: none of');
    rmSync(join(dir, 'webstack.mcl'));
  });

  it('prints only JSON lines on stdout with --json', async () => {
    const ctx = captureContext(dir);
    expect(await run(['apply', planFile(), '--root', dir, '--json'], ctx)).toBe(0);
    const lines = ctx.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.type)).toEqual(['phase', 'instance', 'debug', 'result']);
    expect(lines[3]).toMatchObject({ created: ['app', 'db', 'web'], state: { serial: 1 } });
    expect(JSON.stringify(lines)).not.toContain('hunter2');
  });

  it.each([
    ['stale', 6],
    ['locked', 6],
    ['failure', 5],
    ['usage', 1],
    ['crash', 5],
  ] as const)('maps a %s failure to exit code %i without a stack trace', async (kind, exit) => {
    behaviour = kind;
    const ctx = captureContext(dir);
    expect(await run(['apply', planFile(), '--root', dir], ctx)).toBe(exit);
    expect(ctx.stderr).toMatch(/error: (fake|the backend failed)/);
    expect(ctx.stderr).not.toMatch(/\n\s+at /);
    if (kind !== 'crash') expect(ctx.stderr).toContain(`hint: hint for ${kind}`);
  });

  it('refuses a stale plan before it prints what the plan would change', async () => {
    const ws = mkdtempSync(join(dir, 'stale-'));
    mkdirSync(join(ws, '.mcl'));
    // The deployment matches the plan's instances, but its state moved on since the plan was made.
    const state = stateOf(checkedPlan(), 5);
    writeFileSync(join(ws, '.mcl', 'state.json'), prettyJson(state));
    const path = planFile((p) => void (p.prior_state = { lineage: state.lineage, serial: 4 }));
    // What apply printed before it refused the plan: its changes against a state it was not made for.
    expect(diffPlan(state, JSON.parse(readFileSync(path, 'utf8'))).summary).toBe('No changes. The deployment matches the plan.');
    const ctx = captureContext(dir);
    expect(await run(['apply', path, '--root', ws], ctx)).toBe(6);
    expect(ctx.stderr).toContain(`the plan was made against state ${state.lineage} serial 4, but the state is ${state.lineage} serial 5`);
    expect(ctx.stderr).not.toContain('No changes');
    expect(ctx.stderr).not.toContain('Applying');
    expect(calls).toEqual([]);
  });

  it('refuses a plan file that was edited after planning', async () => {
    const path = planFile();
    const text = (await import('node:fs')).readFileSync(path, 'utf8').replace('"replicas": 2', '"replicas": 9');
    writeFileSync(path, text);
    const ctx = captureContext(dir);
    expect(await run(['apply', path, '--root', dir], ctx)).toBe(1);
    expect(ctx.stderr).toContain("the plan's digests do not match its contents; the file was changed after planning");
    expect(ctx.stderr).toContain('digests.plan does not match the plan');
    expect(calls).toEqual([]);
  });

  it('refuses an invalid or missing plan file with exit code 1', async () => {
    const bad = join(dir, 'bad.plan');
    writeFileSync(bad, JSON.stringify({ format_version: '9.0' }));
    const ctx = captureContext(dir);
    expect(await run(['apply', bad], ctx)).toBe(1);
    expect(ctx.stderr).toContain('plan format_version 9.0 is not supported');
    const ctx2 = captureContext(dir);
    expect(await run(['apply', join(dir, 'nope.plan')], ctx2)).toBe(1);
    expect(ctx2.stderr).toContain('nope.plan: no such plan file');
  });

  it('rejects a bad duration as a usage error', async () => {
    const ctx = captureContext(dir);
    expect(await run(['apply', planFile(), '--lock-timeout', 'soon'], ctx)).toBe(1);
    expect(ctx.stderr).toContain('--lock-timeout "soon" is not a duration');
  });
});

describe('status, logs, destroy, doctor', () => {
  it('renders the status report with memory, counters and violations', async () => {
    const ctx = captureContext(dir);
    expect(await run(['status', '--root', dir], ctx)).toBe(0);
    expect(ctx.stdout).toContain('WebStack  serial 4  supervisor running (pid 4242)  accelerator tcg');
    expect(ctx.stdout).toContain('#0 running pid 77 rss 75MiB pss 47MiB private 10MiB cpu 1.50s  (1 restart)');
    expect(ctx.stdout).toContain('web.backend->app.api (shop.Api): 10/9 frames, 2KiB/4KiB, 2 violations');
    expect(ctx.stdout).toContain('    2026-01-01T00:00:00Z size: frame of 2 MiB exceeds 1 MiB');
    expect(ctx.stdout).toContain('    2026-01-01T00:00:02Z web#0 order_incomplete: the session ended (the port disconnected) in state 1');
    expect(ctx.stdout).toContain('db#0 unwired: write to port slot 5');
    expect(ctx.stdout).toContain('1 clone: rss 75MiB, pss 47MiB, private 10MiB');
    expect(ctx.stdout).toContain('1 zygote, 1 process started ahead: rss 44MiB, pss 19MiB, private 7.4MiB');
  });

  it('puts the warnings of the backend first, with their hints', async () => {
    const warned = { message: 'the supervisor runs WebStack (plan abc), but there is no state file', hint: 'run `mclc apply` again with the same plan' };
    status.warnings = [warned];
    try {
      const ctx = captureContext(dir);
      expect(await run(['status', '--root', dir], ctx)).toBe(0);
      expect(ctx.stdout.startsWith(`warning: ${warned.message}\n  hint: ${warned.hint}\n`)).toBe(true);
      const json = captureContext(dir);
      expect(await run(['status', '--json', '--root', dir], json)).toBe(0);
      expect(JSON.parse(json.stdout).warnings).toEqual([warned]);
    } finally {
      delete status.warnings;
    }
  });

  it('prints the status as JSON', async () => {
    const ctx = captureContext(dir);
    expect(await run(['status', '--json', '--root', dir], ctx)).toBe(0);
    expect(JSON.parse(ctx.stdout)).toMatchObject({ format_version: '1.0', deployed: true, serial: 4, helpers: [{ role: 'zygote', pid: 70 }, { role: 'waiting', pid: 71 }] });
  });

  it('prints logs and reports an unknown instance as a usage error', async () => {
    const ctx = captureContext(dir);
    expect(await run(['logs', 'app', '--tail', '5', '--root', dir], ctx)).toBe(0);
    expect(ctx.stdout).toBe('app#0 program | listening\n');
    expect((calls[0].args[1] as { tail: number }).tail).toBe(5);
    const ctx2 = captureContext(dir);
    expect(await run(['logs', 'ghost', '--root', dir], ctx2)).toBe(1);
    expect(ctx2.stderr).toContain('no instance "ghost" in the deployment');
  });

  it('destroys and reports', async () => {
    const ctx = captureContext(dir);
    expect(await run(['destroy', '--root', dir], ctx)).toBe(0);
    expect(ctx.stdout).toContain('Destroy complete: 1 instance stopped');
  });

  it('runs doctor and fails with 5 when the backend does', async () => {
    const ctx = captureContext(dir);
    expect(await run(['doctor'], ctx)).toBe(0);
    expect(ctx.stdout).toContain('warn kvm: KVM hangs\n       hint: TCG is used');
    behaviour = 'failure';
    expect(await run(['doctor'], captureContext(dir))).toBe(5);
  });
});

describe('what apply verifies about a plan', () => {
  const keys = (name: string) => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const priv = join(dir, `${name}.pem`);
    const pub = join(dir, `${name}.pub`);
    writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
    return { priv, pub };
  };
  const ci = keys('ci');
  const other = keys('other');

  /** A plan file signed as `mclc plan --sign-key` signs it. */
  function signedPlanFile(key = ci.priv, mutate?: (p: Plan) => void): string {
    const path = planFile(mutate);
    writeFileSync(signaturePath(path), signPlan(readFileSync(path, 'utf8'), key, dir));
    return path;
  }

  /** The database exposed on the host against `exposed only [web.http]`, every digest recomputed. */
  const exposeDb = (p: Plan) => {
    p.instances.find((i) => i.id === 'db')!.ports.find((x) => x.name === 'kv')!.exposed_on = 9000;
    p.exposures.push({ ...p.exposures[0], host_port: 9000, transport: 'tcp', instance: 'db', port: 'kv', protocol: 'shop.Kv' });
  };

  it('refuses a plan edited with recomputed digests whose policy checks no longer hold (exit 3)', async () => {
    const plan = checkedPlan();
    exposeDb(plan);
    const ctx = captureContext(dir);
    expect(await run(['apply', writePlan(withDigests(plan)), '--root', dir], ctx)).toBe(3);
    expect(ctx.stderr).toContain("the plan's policy checks do not hold for its own instances, channels and exposures");
    expect(ctx.stderr).toContain('check exposure:exposed-only is recorded as pass but is fail: 1 exposure not in the list: db.kv on tcp 9000.');
    expect(calls).toEqual([]);
  });

  it('refuses a plan whose recorded checks were edited to match (exit 3)', async () => {
    const plan = checkedPlan();
    exposeDb(plan);
    // The attacker also records the failing check as passing and recomputes every digest.
    Object.assign(plan, { checks: plan.checks.map((c) => (c.id === 'exposure' ? { ...c, summary: '2 exposures: tcp 8080 -> web.http, tcp 9000 -> db.kv.' } : c)) });
    const ctx = captureContext(dir);
    expect(await run(['apply', writePlan(withDigests(plan)), '--root', dir], ctx)).toBe(3);
    expect(ctx.stderr).toContain('exposure:exposed-only is recorded as pass but is fail');
    expect(calls).toEqual([]);
  });

  it('refuses a plan whose inner digests do not match, even with the plan digest recomputed (exit 1)', async () => {
    const plan = checkedPlan();
    plan.instances[0].memory_bytes *= 2;
    plan.digests.plan = planDigest(plan);
    const ctx = captureContext(dir);
    expect(await run(['apply', writePlan(plan), '--root', dir], ctx)).toBe(1);
    expect(ctx.stderr).toContain("the plan's digests do not match its contents");
    expect(ctx.stderr).toContain('the digest of instance `app` does not match it');
    expect(calls).toEqual([]);
  });

  it('applies a plan signed with the verifying key', async () => {
    const ctx = captureContext(dir);
    expect(await run(['apply', signedPlanFile(), '--root', dir, '--verify-key', ci.pub], ctx)).toBe(0);
    expect(calls.map((c) => c.fn)).toEqual(['apply']);
  });

  it('refuses a signed plan changed after signing, even one the policy checks allow (a dropped rate limit)', async () => {
    const path = signedPlanFile();
    const plan = JSON.parse(readFileSync(path, 'utf8')) as Plan;
    plan.channels[0].invariants.rate = null;
    writeFileSync(path, prettyJson(withDigests(plan)));
    const ctx = captureContext(dir);
    expect(await run(['apply', path, '--root', dir, '--verify-key', ci.pub], ctx)).toBe(1);
    expect(ctx.stderr).toContain('does not match its signature: the plan file was changed after it was signed');
    expect(calls).toEqual([]);
  });

  it('refuses an unsigned plan when a key is required, by option or by MCL_PLAN_VERIFY_KEY', async () => {
    const path = planFile();
    const ctx = captureContext(dir);
    expect(await run(['apply', path, '--root', dir, '--verify-key', ci.pub], ctx)).toBe(1);
    expect(ctx.stderr).toContain('is not signed');
    const ctx2 = captureContext(dir, { MCL_PLAN_VERIFY_KEY: ci.pub });
    expect(await run(['apply', path, '--root', dir], ctx2)).toBe(1);
    expect(ctx2.stderr).toContain('is not signed');
    expect(calls).toEqual([]);
  });

  it('refuses a plan signed with another key', async () => {
    const ctx = captureContext(dir);
    expect(await run(['apply', signedPlanFile(other.priv), '--root', dir, '--verify-key', ci.pub], ctx)).toBe(1);
    expect(ctx.stderr).toContain('was signed with another key');
    expect(calls).toEqual([]);
  });

  it('signs with `mclc plan --out FILE --sign-key KEY`, and needs --out for it', async () => {
    const out = join(dir, 'signed.plan');
    const ws = join(REPO, 'examples', 'webstack');
    const ctx = captureContext(dir);
    expect(await run(['plan', ws, '--out', out, '--sign-key', ci.priv], ctx)).toBe(0);
    expect(() => verifyPlanSignature(readFileSync(out, 'utf8'), out, ci.pub, dir)).not.toThrow();
    expect(() => verifyPlanSignature(readFileSync(out, 'utf8'), out, other.pub, dir)).toThrow('signed with another key');
    const ctx2 = captureContext(dir);
    expect(await run(['plan', ws, '--sign-key', ci.priv], ctx2)).toBe(1);
    expect(ctx2.stderr).toContain('--sign-key signs the plan file, so it needs --out FILE');
    const ctx3 = captureContext(dir);
    expect(await run(['plan', ws, '--out', join(dir, 'x.plan'), '--sign-key', ci.pub], ctx3)).toBe(1);
    expect(ctx3.stderr).toContain('is not a PEM private key');
  });
});

describe('the table of backends', () => {
  it('applies a plan with the backend it targets, naming it for the supervisor', async () => {
    const ctx = captureContext(dir);
    const ws = mkdtempSync(join(dir, 'ws-'));
    expect(await run(['apply', planFile((p) => void (p.target.backend = 'xen')), '--root', ws], ctx)).toBe(0);
    expect(calls.map((c) => c.fn)).toEqual(['xen.apply']);
    expect((calls[0].args[1] as ApplyOptions).supervisorCommand.slice(-2)).toEqual(['--backend', 'xen']);
  });

  it('acts on a deployment with the backend its state names', async () => {
    const ws = mkdtempSync(join(dir, 'ws-'));
    mkdirSync(join(ws, '.mcl'));
    writeFileSync(join(ws, '.mcl', 'state.json'), prettyJson({ ...stateOf(webstackPlan(), 3), backend: 'xen' }));
    expect(await run(['status', '--root', ws], captureContext(dir))).toBe(0);
    expect(calls.map((c) => c.fn)).toEqual(['xen.status']);
    writeFileSync(join(ws, '.mcl', 'state.json'), prettyJson(stateOf(webstackPlan(), 3)));
    expect(await run(['status', '--root', ws], captureContext(dir))).toBe(0);
    expect(calls.map((c) => c.fn)).toEqual(['xen.status', 'status']);
  });

  it('starts the default backend\'s supervisor without naming it, and routes __supervise by --backend', async () => {
    await run(['apply', planFile(), '--root', dir], captureContext(dir));
    expect((calls[0].args[1] as ApplyOptions).supervisorCommand).not.toContain('--backend');
    expect(await run(['--backend', 'xen', '__supervise', dir], captureContext(dir))).toBe(0);
    expect(calls.map((c) => c.fn)).toEqual(['apply', 'xen.runSupervisor']);
    const ctx = captureContext(dir);
    expect(await run(['--backend', 'vmware', '__supervise', dir], ctx)).toBe(1);
    expect(ctx.stderr).toContain('the vmware backend, which this mclc cannot deploy to');
    expect(ctx.stderr).toContain('This mclc deploys with: kvm, xen, kubevirt.');
  });
});

describe('usage errors', () => {
  it('exits with 1 on an unknown command or option', async () => {
    const ctx = captureContext(dir);
    expect(await run(['aply'], ctx)).toBe(1);
    expect(ctx.stderr).toContain("unknown command 'aply'");
    expect(ctx.stderr).toContain('(Did you mean apply?)');
    expect(await run(['status', '--bogus'], captureContext(dir))).toBe(1);
  });

  it('prints help with examples and exit codes', async () => {
    const ctx = captureContext(dir);
    expect(await run(['--help'], ctx)).toBe(0);
    expect(ctx.stdout).toContain('Examples:');
    expect(ctx.stdout).toContain('6   stale plan or state locked');
    const ctx2 = captureContext(dir);
    expect(await run(['plan', '--help'], ctx2)).toBe(0);
    expect(ctx2.stdout).toContain('mclc plan examples/webstack --out shop.plan');
  });

  it.each(['validate', 'plan', 'show', 'render', 'graph', 'fmt', 'apply', 'destroy', 'status', 'logs', 'doctor'])('documents %s with examples', async (cmd) => {
    const ctx = captureContext(dir);
    expect(await run([cmd, '--help'], ctx)).toBe(0);
    expect(ctx.stdout).toContain('Examples:');
    expect(ctx.stdout).toContain(`mclc ${cmd}`);
  });

  it('prints the version', async () => {
    const ctx = captureContext(dir);
    expect(await run(['--version'], ctx)).toBe(0);
    expect(ctx.stdout).toBe('0.1.0\n');
  });
});
