// End-to-end tests of the bundled `mclc` (cli/dist/mclc.mjs) on fixture
// workspaces: exit codes of every class, rendered diagnostics, machine
// formats, plan files, state diffs, graphs and formatting.

import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeploymentState, Plan } from '@mcl/plan';
import { expectGolden } from './golden';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const bundle = join(repo, 'cli/dist/mclc.mjs');
const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'mclc-e2e-'));

/** Newest modification time of the sources that go into the bundle. */
function newestSource(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, name.name);
    if (name.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (name.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

beforeAll(async () => {
  const stale = !existsSync(bundle) || statSync(bundle).mtimeMs < Math.max(...['cli/src', 'plan/src', 'compiler/src', 'language/src'].map((d) => newestSource(join(repo, d))));
  if (stale) await execa('node', [join(repo, 'scripts/build.mjs')], { cwd: repo });
}, 120_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function mclc(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  const r = await execa('node', [bundle, ...args], {
    cwd: opts.cwd ?? fixtures,
    reject: false,
    env: { NO_COLOR: '', FORCE_COLOR: '', CI: '', MCL_IN_AUTOMATION: '', ...opts.env },
    extendEnv: true,
    stripFinalNewline: false,
  });
  return { code: r.exitCode, stdout: r.stdout as string, stderr: r.stderr as string };
}

function stateFromPlan(plan: Plan, serial: number): DeploymentState {
  return {
    format_version: '1.0',
    lineage: '0b9f3c2e-1d7a-4c55-9e0f-6a1b2c3d4e5f',
    serial,
    backend: 'kvm',
    plan_digest: plan.digests.plan,
    system: plan.system,
    instances: plan.instances,
    channels: plan.channels,
    exposures: plan.exposures,
  };
}

describe('validate', () => {
  it('exits 0 on valid sources', async () => {
    const r = await mclc(['validate', 'shop']);
    expect(r).toMatchObject({ code: 0, stdout: '' });
    expect(r.stderr).toBe('No problems found in 2 files.\n');
  });

  it('renders syntax errors as code frames and exits 1', async () => {
    const r = await mclc(['validate', 'broken/syntax.mcl']);
    expect(r.code).toBe(1);
    expectGolden('e2e-syntax.txt', r.stderr);
  });

  it('exits 1 on a wiring error', async () => {
    const r = await mclc(['validate', 'broken/unwired.mcl']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error MCL0406');
  });

  it('exits 3 when only policies are violated', async () => {
    const r = await mclc(['validate', 'broken/policy.mcl']);
    expect(r.code).toBe(3);
    expectGolden('e2e-policy.txt', r.stderr);
  });

  it('prints JSON diagnostics with --json and --format json', async () => {
    const r = await mclc(['validate', 'broken/policy.mcl', '--json']);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe('');
    expectGolden('e2e-policy.json', r.stdout);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ format_version: '1.1', valid: false, error_count: 1, warning_count: 0, omitted: null });
    expect((await mclc(['validate', 'broken/policy.mcl', '--format', 'json'])).stdout).toBe(r.stdout);
    const ok = JSON.parse((await mclc(['validate', 'shop', '--json'])).stdout);
    expect(ok).toEqual({ format_version: '1.1', valid: true, error_count: 0, warning_count: 0, omitted: null, diagnostics: [] });
  });

  it('prints SARIF 2.1.0 with repository-relative paths and registered rules', async () => {
    const r = await mclc(['validate', 'broken/policy.mcl', '--format', 'sarif']);
    expect(r.code).toBe(3);
    const sarif = JSON.parse(r.stdout);
    expect(sarif.version).toBe('2.1.0');
    expect(sarif.$schema).toMatch(/sarif-2\.1\.0/);
    const run = sarif.runs[0];
    expect(run.tool.driver).toMatchObject({ name: 'mclc', version: '0.1.0' });
    const ruleIds: string[] = run.tool.driver.rules.map((x: { id: string }) => x.id);
    // Rules come from the registries of both packages.
    expect(ruleIds).toContain('MCL0101');
    expect(ruleIds).toContain('MCL0406');
    expect(ruleIds).toContain('MCL0501');
    for (const rule of run.tool.driver.rules) expect(rule.shortDescription.text).toBeTruthy();
    expect(run.results).toHaveLength(1);
    const res = run.results[0];
    expect(ruleIds[res.ruleIndex]).toBe(res.ruleId);
    expect(res.locations[0].physicalLocation.artifactLocation).toEqual({ uri: 'cli/test/fixtures/broken/policy.mcl', uriBaseId: '%SRCROOT%' });
    expect(res.locations[0].physicalLocation.region).toMatchObject({ startLine: 30, startColumn: 5 });
    // The rule index depends on how many codes the registries hold, so it is checked above and left out of the golden file.
    const stable = run.results.map(({ ruleIndex: _, ...rest }: { ruleIndex: number }) => rest);
    expectGolden('e2e-policy.sarif-results.json', JSON.stringify(stable, null, 2) + '\n');
  });

  it('refuses a path that does not exist and an unknown format, without a stack trace', async () => {
    const r = await mclc(['validate', 'nope']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error: nope: no such file or directory');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect((await mclc(['validate', 'shop', '--format', 'xml'])).code).toBe(1);
  });

  it('colours only on request, and never with NO_COLOR in automation', async () => {
    expect((await mclc(['validate', 'broken/unwired.mcl'])).stderr).not.toContain('\x1b[');
    expect((await mclc(['validate', 'broken/unwired.mcl'], { env: { FORCE_COLOR: '1' } })).stderr).toContain('\x1b[31m');
  });
});

describe('plan and show', () => {
  const planPath = join(tmp, 'shop.plan');

  it('writes a canonical plan with --out and shows it, redacting sensitive values', async () => {
    const r = await mclc(['plan', 'shop', '--out', planPath]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Plan: 3 to add, 0 to replace, 0 to destroy.');
    expect(r.stdout).toContain('+ exposure tcp 8080 -> web.http (std.http.Http)');
    expect(r.stdout).toContain('+ channel greet.store -> store.kv (std.kv.Kv)');
    expect(r.stdout).toContain('Checks: ');
    expect(r.stdout).not.toContain('s3cr3t');
    const text = readFileSync(planPath, 'utf8');
    const plan = JSON.parse(text) as Plan;
    // The plan file keeps the value: the backend needs it.
    expect(plan.instances.find((i) => i.id === 'greet')!.params.api_key).toBe('s3cr3t-api-key');
    expect(text.endsWith('}\n')).toBe(true);
    expect(plan.prior_state).toBeNull();

    const shown = await mclc(['show', planPath]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('System shop.Shop on target local (kvm)');
    expect(shown.stdout).toContain('api_key="(sensitive)"');
    expect(shown.stdout).toContain('tcp 8080 -> web.http');
    expect(shown.stdout + shown.stderr).not.toContain('s3cr3t');
    const json = await mclc(['show', planPath, '--json']);
    expect(json.stdout).not.toContain('s3cr3t');
    expect(JSON.parse(json.stdout).instances.map((i: { id: string }) => i.id)).toEqual(['greet', 'store', 'web']);
    const flask = await mclc(['show', planPath, '--flask']);
    expect(flask.code).toBe(0);
    for (const id of ['greet', 'store', 'web']) expect(flask.stdout).toContain(`mcl_domain(mcl_${id}_t) # instance ${id}`);
    expect(flask.stdout).toContain('neverallow mcl_guest mcl_guest:grant { map_read map_write copy transfer };');
    expect(flask.stdout).not.toContain('s3cr3t');
    expect((await mclc(['show', planPath, '--flask', '--json'])).code).toBe(1);
  });

  it('gives the same plan bytes twice', async () => {
    const again = join(tmp, 'again.plan');
    await mclc(['plan', 'shop', '--out', again]);
    expect(readFileSync(again, 'utf8')).toBe(readFileSync(planPath, 'utf8'));
  });

  it('exits 2 with --detailed-exitcode when there are changes and 0 when there are none', async () => {
    expect((await mclc(['plan', 'shop', '--detailed-exitcode'])).code).toBe(2);
    const plan = JSON.parse(readFileSync(planPath, 'utf8')) as Plan;
    const statePath = join(tmp, 'state.json');
    writeFileSync(statePath, JSON.stringify(stateFromPlan(plan, 7)));
    const same = await mclc(['plan', 'shop', '--state', statePath, '--detailed-exitcode', '--out', join(tmp, 'next.plan')]);
    expect(same.code).toBe(0);
    expect(same.stdout).toContain('No changes. The deployment matches the plan.');
    expect(JSON.parse(readFileSync(join(tmp, 'next.plan'), 'utf8')).prior_state).toEqual({ lineage: '0b9f3c2e-1d7a-4c55-9e0f-6a1b2c3d4e5f', serial: 7 });

    // A deployment with one replica of the store and an extra instance differs from the sources.
    const older = stateFromPlan(plan, 8);
    older.instances = older.instances.map((i) => (i.id === 'store' ? { ...i, replicas: 1, digest: '0'.repeat(64) } : i));
    older.instances.push({ ...older.instances[0], id: 'legacy', digest: '1'.repeat(64) });
    writeFileSync(statePath, JSON.stringify(older));
    const changed = await mclc(['plan', 'shop', '--state', statePath, '--detailed-exitcode']);
    expect(changed.code).toBe(2);
    expect(changed.stdout).toMatch(/-\/\+ store\s+shop\.Store\s+replace \(replicas changed\)/);
    expect(changed.stdout).toMatch(/-\s+legacy\s+shop\.Greet\s+destroy/);
    expect(changed.stdout).toContain('Plan: 0 to add, 1 to replace, 1 to destroy.');
  });

  it('reads the state under the workspace by default and refuses a corrupt one', async () => {
    const ws = join(tmp, 'ws');
    cpSync(join(fixtures, 'shop'), ws, { recursive: true });
    mkdirSync(join(ws, '.mcl'));
    writeFileSync(join(ws, '.mcl/state.json'), '{"format_version": "1.0", "lineage": ');
    const r = await mclc(['plan'], { cwd: ws });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('.mcl/state.json is not a valid deployment state');
    const plan = JSON.parse(readFileSync(planPath, 'utf8')) as Plan;
    writeFileSync(join(ws, '.mcl/state.json'), JSON.stringify(stateFromPlan(plan, 3)));
    expect((await mclc(['plan', '--detailed-exitcode'], { cwd: ws })).code).toBe(0);
  });

  it('prints a machine document with --json and nothing else on stdout', async () => {
    const r = await mclc(['plan', 'shop', '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ format_version: '1.1', valid: true, summary: 'Plan: 3 to add, 0 to replace, 0 to destroy.', has_changes: true });
    expect(doc.changes.instances.map((c: { action: string }) => c.action)).toEqual(['create', 'create', 'create']);
    expect(doc.checks.length).toBeGreaterThan(0);
    expect(r.stdout).not.toContain('s3cr3t');
    const bad = await mclc(['plan', 'broken/policy.mcl', '--json']);
    expect(bad.code).toBe(3);
    expect(JSON.parse(bad.stdout)).toMatchObject({ valid: false, error_count: 1 });
  });

  it('leaves out excluded instances', async () => {
    const r = await mclc(['plan', 'trio', '--exclude', 'b', '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.changes.instances.map((c: { id: string }) => c.id)).toEqual(['a', 'store']);
    expect(doc.warning_count).toBe(1);
    expect(doc.diagnostics[0].code).toBe('MCL0705');
  });

  it('refuses a plan file that is not a plan', async () => {
    const bad = join(tmp, 'bad.plan');
    writeFileSync(bad, '{"format_version": "2.0"}');
    const r = await mclc(['show', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('plan format_version 2.0 is not supported');
    expect(r.stderr).toContain('upgrade mclc');
  });
});

describe('apply of a stale plan', () => {
  it('refuses a plan made before anything was deployed once the state records a deployment (exit 6), before starting anything', async () => {
    const ws = join(tmp, 'stale-ws');
    cpSync(join(fixtures, 'shop'), ws, { recursive: true });
    const early = join(tmp, 'early.plan');
    expect((await mclc(['plan', '--out', early], { cwd: ws })).code).toBe(0);
    const plan = JSON.parse(readFileSync(early, 'utf8')) as Plan;
    expect(plan.prior_state).toBeNull();
    // Someone else deployed meanwhile (another plan: other digest).
    mkdirSync(join(ws, '.mcl'));
    const theirs = { ...stateFromPlan(plan, 2), plan_digest: 'f'.repeat(64) };
    writeFileSync(join(ws, '.mcl/state.json'), JSON.stringify(theirs));
    const r = await mclc(['apply', early, '--root', ws]);
    expect(r.code).toBe(6);
    expect(r.stderr).toContain('error: the plan was made when nothing was deployed, but the state now records a deployment of shop.Shop (serial 2, 3 instances)');
    expect(r.stderr).toContain('hint: run `mclc plan` again');
    const json = await mclc(['apply', early, '--root', ws, '--json']);
    expect(json.code).toBe(6);
    const last = JSON.parse(json.stdout.trim().split('\n').pop()!);
    expect(last).toMatchObject({ type: 'error', kind: 'stale' });
    // Refused under the lock before any supervisor was started: the state is untouched and no run directory exists.
    expect(JSON.parse(readFileSync(join(ws, '.mcl/state.json'), 'utf8'))).toEqual(theirs);
    expect(existsSync(join(ws, '.mcl/run'))).toBe(false);
  });
});

describe('graph', () => {
  it('prints DOT', async () => {
    const r = await mclc(['graph', 'shop']);
    expect(r.code).toBe(0);
    expectGolden('e2e-shop.dot', r.stdout);
  });

  it('writes well-formed SVG rendered locally', async () => {
    const out = join(tmp, 'shop.svg');
    const r = await mclc(['graph', 'shop', '--format', 'svg', '--out', out]);
    expect(r.code).toBe(0);
    const svg = readFileSync(out, 'utf8');
    expect(svg).toMatch(/^<\?xml/);
    expect(svg).toContain('<svg');
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('lib.Greeter');
  });
});

describe('fmt', () => {
  it('lists unformatted files with --check (exit 4), formats them, then passes', async () => {
    const ws = join(tmp, 'fmt');
    mkdirSync(ws);
    writeFileSync(join(ws, 'a.mcl'), 'type   A = {x: int}\n');
    const check = await mclc(['fmt', '--check', ws]);
    expect(check.code).toBe(4);
    expect(check.stdout).toContain('a.mcl');
    expect((await mclc(['fmt', ws])).code).toBe(0);
    expect(readFileSync(join(ws, 'a.mcl'), 'utf8')).not.toBe('type   A = {x: int}\n');
    expect((await mclc(['fmt', '--check', ws])).code).toBe(0);
  });

  it('says so when the formatter is missing, and the other commands still work', async () => {
    // A copy of the bundle (the entry and the chunks it loads) with no plugin bundle beside it and no node_modules above it.
    const lonely = join(tmp, 'lonely/dist');
    mkdirSync(lonely, { recursive: true });
    cpSync(bundle, join(lonely, 'mclc.mjs'));
    for (const f of readdirSync(dirname(bundle))) if (/^chunk-\w+\.mjs$/.test(f)) cpSync(join(dirname(bundle), f), join(lonely, f));
    const r = await execa('node', [join(lonely, 'mclc.mjs'), 'fmt', '--check', join(fixtures, 'shop')], { reject: false, cwd: tmp });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('error: the formatter is not available');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const v = await execa('node', [join(lonely, 'mclc.mjs'), '--version'], { reject: false, cwd: tmp });
    expect(v.stdout).toBe('0.1.0');
  });

  it('reports a file that does not parse with exit 1', async () => {
    const r = await mclc(['fmt', '--check', 'broken/syntax.mcl']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('broken/syntax.mcl:2:10: error: cannot format');
  });
});

describe('help and usage', () => {
  it('documents the exit codes and hides the supervisor command', async () => {
    const top = await mclc(['--help']);
    expect(top.stdout).toContain('Exit codes:');
    expect(top.stdout).not.toContain('__supervise');
  });

  it('exits 1 on a usage error', async () => {
    const r = await mclc(['plan', '--frobnicate']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("unknown option '--frobnicate'");
  });
});
