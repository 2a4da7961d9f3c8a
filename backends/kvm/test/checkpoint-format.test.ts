// The checkpoint directory without QEMU: a complete checkpoint passes, and
// every way of being incomplete, damaged or foreign is refused by name
// before anything is changed (spec/checkpoint.md).

import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { manifestProblem, verifyCheckpoint, writeCheckpointFile, writeManifest, type CheckpointManifest } from '../src/lifecycle/checkpoint';
import { planOf } from './fixtures/plans';

const root = mkdtempSync(join(tmpdir(), 'mcl-ckpt-format-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const plan = planOf(join(__dirname, 'fixtures/checkpoint'), 'checkpoint.mcl');
let n = 0;

/** A complete checkpoint of the fixture plan with made-up clone files; `edit` changes the manifest before it is written. */
function makeCheckpoint(edit?: (m: CheckpointManifest, dir: string) => void): string {
  const dir = join(root, `c${n++}`);
  mkdirSync(dir);
  const clone = (name: string) => ({
    index: 0,
    device_state: writeCheckpointFile(dir, `${name}.0.dev`, Buffer.from(`device state of ${name}`)),
    ram: { ...writeCheckpointFile(dir, `${name}.0.ram`, Buffer.from(`pages of ${name}`)), pages: 1 },
  });
  const m: CheckpointManifest = {
    format: 'mcl-checkpoint',
    format_version: 1,
    created_at: new Date().toISOString(),
    scope: 'deployment',
    system: plan.system,
    plan_digest: plan.digests.plan,
    plan: writeCheckpointFile(dir, 'plan.json', JSON.stringify(plan)),
    broker: writeCheckpointFile(dir, 'broker.json', JSON.stringify({ format: 1, counters: {}, ports: [], next_session: 1 })),
    host: { accelerator: 'tcg', qemu: null },
    templates: plan.templates.map((t) => ({ id: t.id, key: 'k', build: 'a'.repeat(64), memory_bytes: t.memory_bytes })),
    instances: plan.instances.map((i) => ({ id: i.id, template: i.template, clones: [clone(i.id)] })),
    pause_ms: 12,
  };
  edit?.(m, dir);
  writeManifest(dir, m);
  return dir;
}

describe('checkpoint format', () => {
  it('accepts a complete checkpoint and gives its plan and broker state', () => {
    const cp = verifyCheckpoint(makeCheckpoint());
    expect(cp.plan.digests.plan).toBe(plan.digests.plan);
    expect(cp.broker.format).toBe(1);
    expect(cp.manifest.instances.map((i) => i.id).sort()).toEqual(['counter', 'store']);
  });

  it('refuses a file whose digest or size differs, a missing file, a link, and a missing manifest', () => {
    const a = makeCheckpoint();
    writeFileSync(join(a, 'counter.0.ram'), 'pages of countex');
    expect(() => verifyCheckpoint(a)).toThrow(/counter\.0\.ram does not match its sha256 in the manifest; nothing was changed/);
    const b = makeCheckpoint();
    writeFileSync(join(b, 'store.0.dev'), 'longer device state of store');
    expect(() => verifyCheckpoint(b)).toThrow(/store\.0\.dev has 28 bytes, the manifest says 21/);
    const c = makeCheckpoint();
    unlinkSync(join(c, 'broker.json'));
    expect(() => verifyCheckpoint(c)).toThrow(/broker\.json is missing/);
    const d = makeCheckpoint();
    const target = join(d, 'elsewhere');
    writeFileSync(target, readFileSync(join(d, 'plan.json')));
    unlinkSync(join(d, 'plan.json'));
    symlinkSync(target, join(d, 'plan.json'));
    expect(() => verifyCheckpoint(d)).toThrow(/plan\.json cannot be read \(ELOOP\)/);
    const e = makeCheckpoint();
    unlinkSync(join(e, 'checkpoint.json'));
    expect(() => verifyCheckpoint(e)).toThrow(/checkpoint\.json is missing \(an interrupted checkpoint has none\)/);
  });

  it('refuses a manifest of another format, a path for a file name, and an instance the plan does not have', () => {
    expect(() => verifyCheckpoint(makeCheckpoint((m) => (m.format_version = 2)))).toThrow(/format_version 2 is not supported/);
    expect(() => verifyCheckpoint(makeCheckpoint((m) => (m.instances[0].clones[0].ram.file = '../x.ram')))).toThrow(/ram\.file is not a plain file name/);
    expect(() => verifyCheckpoint(makeCheckpoint((m) => (m.instances[0].id = 'ghost')))).toThrow(/instance ghost is not in the checkpoint's plan/);
    expect(() => verifyCheckpoint(makeCheckpoint((m) => (m.plan_digest = 'b'.repeat(64))))).toThrow(/the plan's digest .* is not the manifest's/);
  });

  it('names the first problem of a manifest', () => {
    expect(manifestProblem([])).toBe('the manifest is not a JSON object');
    expect(manifestProblem({ format: 'zip' })).toMatch(/format is "zip"/);
  });
});
