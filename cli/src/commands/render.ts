// `mclc render PLAN --format k8s`: the Kubernetes objects of a kubevirt plan,
// the same ones `mclc apply` sends (spec/kubevirt.md), for review, GitOps or
// `kubectl apply`. The plan is verified as `apply` verifies it, since what is
// printed may be applied without mclc.

import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { KubeObject } from '@mcl/backend-kubevirt/render';
import type { Context } from '../context';
import { CliError, ExitCode, type ExitCodeValue } from '../exit';
import { displayPath, writeAtomic } from '../files';
import { readPlanDocument } from '../plan-file';
import { verifyPlan } from './lifecycle';

export interface RenderOptions {
  format?: string;
  out?: string;
  json?: boolean;
  verifyKey?: string;
}

/** The first line of every file `render --out` writes: files that start otherwise in DIR are never removed. */
const HEADER_YAML = '# Rendered by mclc from plan ';
const FILE_NAME = /^\d{3}-[a-z]+-[a-z0-9-]+\.(yaml|json)$/;

export async function renderCommand(ctx: Context, planFile: string, o: RenderOptions): Promise<ExitCodeValue> {
  const format = o.format ?? 'k8s';
  if (format !== 'k8s') throw new CliError(`unknown --format ${JSON.stringify(format)}`, ExitCode.Invalid, 'Use --format k8s.');
  const path = resolve(ctx.cwd, planFile);
  const { plan, text } = readPlanDocument(path, ctx.cwd);
  verifyPlan(ctx, plan, text, path, o.verifyKey ?? (ctx.env.MCL_PLAN_VERIFY_KEY || undefined));
  const r = await import('@mcl/backend-kubevirt/render');
  let objects: KubeObject[];
  try {
    objects = r.renderObjects(plan);
  } catch (e) {
    if (e instanceof r.RenderError) throw new CliError(`${displayPath(ctx.cwd, path)}: ${e.message}`, ExitCode.Invalid, e.hint);
    throw e;
  }
  if (!o.out) {
    ctx.out(o.json ? r.toJsonList(objects) : r.toYaml(objects));
    return ExitCode.Ok;
  }
  // One file per object, numbered in the order they are applied; files a
  // previous render wrote that this plan no longer has are removed, so
  // `kubectl apply -f DIR` sees exactly this plan.
  const dir = resolve(ctx.cwd, o.out);
  if (existsSync(dir) && !lstatSync(dir).isDirectory()) throw new CliError(`${displayPath(ctx.cwd, dir)} is not a directory`, ExitCode.Invalid, '--out names a directory for the objects, one file each.');
  mkdirSync(dir, { recursive: true });
  const ext = o.json ? 'json' : 'yaml';
  const header = `${HEADER_YAML}sha256:${plan.digests.plan}; do not edit\n`;
  const written = new Set<string>();
  objects.forEach((obj, i) => {
    const name = `${String(i).padStart(3, '0')}-${obj.kind.toLowerCase()}-${obj.metadata.name}.${ext}`;
    written.add(name);
    // JSON has no comments: the header goes into YAML files only, and JSON files are recognised by their name and labels.
    writeAtomic(join(dir, name), o.json ? `${JSON.stringify(obj, null, 2)}\n` : header + r.toYaml([obj]), ctx.cwd);
  });
  for (const f of readdirSync(dir)) {
    if (written.has(f) || !FILE_NAME.test(f)) continue;
    const p = join(dir, f);
    if (!lstatSync(p).isFile()) continue;
    const head = readFileSync(p, 'utf8').slice(0, 4096);
    const ours = f.endsWith('.yaml') ? head.startsWith(HEADER_YAML) : head.includes(`"app.kubernetes.io/managed-by": "${r.MANAGER}"`);
    if (ours) rmSync(p);
  }
  ctx.err(`Wrote ${objects.length} objects to ${displayPath(ctx.cwd, dir)} (namespace ${plan.target.namespace}).\n`);
  return ExitCode.Ok;
}
