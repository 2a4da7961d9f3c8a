// `mclc checkpoint` and `mclc restore` against a fake backend module: the
// options it gets, the result for people and as JSON, failures mapped to
// exit codes, and a backend without checkpoints refused by name.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { CheckpointOptions, RestoreOptions } from '@mcl/plan/backend';
import { run } from '../src/cli';
import { captureContext } from './capture';

const calls: { fn: string; args: unknown[] }[] = [];
let behaviour: 'ok' | 'stale' | 'usage' | 'failure' | 'unsupported' = 'ok';

function fail(): void {
  if (behaviour === 'ok' || behaviour === 'unsupported') return;
  throw Object.assign(new Error(`fake ${behaviour}`), { kind: behaviour, hint: `hint for ${behaviour}` });
}

const result = { dir: '/w/ckpt', scope: 'deployment', plan_digest: 'ab'.repeat(32), instances: ['app', 'db'], clones: 2, pause_ms: 120, elapsed_ms: 800, bytes: 600_000, ram_bytes: 450_000, device_state_bytes: 117_000 };

const checkpointFn = async (opts: CheckpointOptions, onEvent: (e: unknown) => void) => {
  calls.push({ fn: 'checkpoint', args: [opts] });
  onEvent({ type: 'phase', phase: 'checkpoint', action: 'start', message: 'pausing 2 clone(s) and the broker' });
  fail();
  return result;
};

const restoreFn = async (dir: string, opts: RestoreOptions) => {
  calls.push({ fn: 'restore', args: [dir, opts] });
  fail();
  return { dir, plan_digest: result.plan_digest, instances: ['app', 'db'], clones: 2, restore_ms: 900, elapsed_ms: 1500, warnings: [], state: { lineage: 'L', serial: 4 } };
};

// The two functions are optional in the contract: a getter leaves them out while `behaviour` is `unsupported`.
vi.mock('@mcl/backend-kvm', () => ({
  async apply() {},
  async destroy() {},
  async status() {},
  async logs() {},
  async doctor() {
    return { checks: [] };
  },
  async runSupervisor() {},
  get checkpoint() {
    return behaviour === 'unsupported' ? undefined : checkpointFn;
  },
  get restore() {
    return behaviour === 'unsupported' ? undefined : restoreFn;
  },
}));

const dir = mkdtempSync(join(tmpdir(), 'mclc-ckpt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeEach(() => {
  calls.length = 0;
  behaviour = 'ok';
});

describe('mclc checkpoint and restore', () => {
  it('passes the instances and the --out directory, and reports the pause and the size', async () => {
    const ctx = captureContext(dir);
    expect(await run(['checkpoint', 'app', '--out', 'ck', '--root', dir], ctx)).toBe(0);
    expect(calls[0].args[0]).toMatchObject({ out: join(dir, 'ck'), instances: ['app'], stateFile: join(dir, '.mcl', 'state.json') });
    expect(ctx.stdout).toMatch(/Checkpoint complete: 2 instances \(2 clones\)/);
    expect(ctx.stdout).toMatch(/paused 120 ms/);
    expect(ctx.stderr).toContain('pausing 2 clone(s) and the broker');
  });

  it('writes the checkpoint beside the state by default', async () => {
    const ctx = captureContext(dir);
    expect(await run(['checkpoint', '--root', dir], ctx)).toBe(0);
    expect((calls[0].args[0] as CheckpointOptions).out).toMatch(new RegExp(`^${join(dir, '.mcl', 'checkpoints')}/\\d{4}-`));
    expect((calls[0].args[0] as CheckpointOptions).instances).toEqual([]);
  });

  it('prints events and the result as JSON lines', async () => {
    const ctx = captureContext(dir);
    expect(await run(['checkpoint', '--json', '--root', dir], ctx)).toBe(0);
    const lines = ctx.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ type: 'phase', phase: 'checkpoint' });
    expect(lines.at(-1)).toMatchObject({ type: 'result', pause_ms: 120, bytes: 600_000 });
  });

  it('restores a directory relative to the current one and reports the state serial', async () => {
    const ctx = captureContext(dir);
    expect(await run(['restore', 'ck', '--root', dir, '--ready-timeout', '90s'], ctx)).toBe(0);
    expect(calls[0].args[0]).toBe(join(dir, 'ck'));
    expect(calls[0].args[1]).toMatchObject({ readyTimeoutMs: 90_000 });
    expect(ctx.stdout).toMatch(/Restore complete: 2 instances \(2 clones\) running from ck; ready in 900 ms/);
    expect(ctx.stdout).toMatch(/state serial 4/);
  });

  it.each([
    ['stale', 6],
    ['failure', 5],
    ['usage', 1],
  ] as const)('maps a %s failure to exit %i', async (kind, code) => {
    behaviour = kind;
    const ctx = captureContext(dir);
    await expect(run(['restore', 'ck', '--root', dir], ctx)).resolves.toBe(code);
    expect(ctx.stderr).toContain(`fake ${kind}`);
    expect(ctx.stderr).toContain(`hint for ${kind}`);
  });

  it('says so when the backend cannot take or restore checkpoints', async () => {
    behaviour = 'unsupported';
    const a = captureContext(dir);
    expect(await run(['checkpoint', '--root', dir], a)).toBe(5);
    expect(a.stderr).toContain('the KVM backend cannot take checkpoints');
    const b = captureContext(dir);
    expect(await run(['restore', 'ck', '--root', dir], b)).toBe(5);
    expect(b.stderr).toContain('the KVM backend cannot restore checkpoints');
  });

  it.each(['checkpoint', 'restore'])('documents %s with examples and exit codes', async (cmd) => {
    const ctx = captureContext(dir);
    expect(await run([cmd, '--help'], ctx)).toBe(0);
    expect(ctx.stdout).toContain('Examples:');
    expect(ctx.stdout).toContain(`mclc ${cmd}`);
    expect(ctx.stdout).toContain('Exit codes:');
  });
});
