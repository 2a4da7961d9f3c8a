// `mclc render PLAN --format k8s`: the Kubernetes objects of a kubevirt plan,
// the same ones `mclc apply` sends (spec/kubevirt.md), for review, GitOps or
// `kubectl apply`. The plan is verified as `apply` verifies it, since what is
// printed may be applied without mclc.

import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { KubeObject } from '@mcl/backend-kubevirt/render';
import type { Plan } from '@mcl/plan';
import type { Context } from '../context';
import { CliError, ExitCode, type ExitCodeValue } from '../exit';
import { displayPath, MAX_DOCUMENT_BYTES, writeAtomic } from '../files';
import { readBoundedFile } from '@mcl/compiler/node-host';
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
  if (format !== 'k8s' && format !== 'containerdisk') throw new CliError(`unknown --format ${JSON.stringify(format)}`, ExitCode.Invalid, 'Use --format k8s or containerdisk.');
  if (format === 'containerdisk' && !o.out) throw new CliError('--format containerdisk writes a build context per image: give it --out DIR', ExitCode.Invalid);
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
  if (format === 'containerdisk') return containerDisks(ctx, plan, resolve(ctx.cwd, o.out!), r);
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
    // A file mclc wrote is a regular file no larger than a plan; anything else here is not ours to remove.
    const read = readBoundedFile(p, MAX_DOCUMENT_BYTES, { noFollow: true });
    if (!read.ok) continue;
    const head = read.text.slice(0, 4096);
    const ours = f.endsWith('.yaml') ? head.startsWith(HEADER_YAML) : head.includes(`"app.kubernetes.io/managed-by": "${r.MANAGER}"`);
    if (ours) rmSync(p);
  }
  ctx.err(`Wrote ${objects.length} objects to ${displayPath(ctx.cwd, dir)} (namespace ${plan.target.namespace}).\n`);
  return ExitCode.Ok;
}

/**
 * `--format containerdisk`: for every image of the plan, a build context
 * `DIR/<image>/` holding the KVM backend's kernel and initramfs of that image
 * (built, or taken from its cache) under `boot/`, a Dockerfile that puts them
 * where KubeVirt's `kernelBoot` looks, and `image.txt`, the reference the
 * rendered VirtualMachines pull. `docker build -t "$(cat image.txt)" . &&
 * docker push "$(cat image.txt)"` in each one publishes it.
 */
async function containerDisks(ctx: Context, plan: Plan, dir: string, r: typeof import('@mcl/backend-kubevirt/render')): Promise<ExitCodeValue> {
  const { registry } = r.kubeSettings(plan);
  const kvm = await import('@mcl/backend-kvm');
  for (const image of plan.images) {
    let built: Awaited<ReturnType<typeof kvm.buildImage>>;
    try {
      built = await kvm.buildImage(r.guestImageSpec(image));
    } catch (e) {
      throw new CliError(`cannot build image ${image.name}: ${(e as Error).message}`, ExitCode.BackendFailure, (e as { hint?: string }).hint ?? 'Run `mclc doctor`: building a guest image needs the kernel and busybox-static.');
    }
    const out = join(dir, r.objectName(image.name));
    if (existsSync(out) && !lstatSync(out).isDirectory()) throw new CliError(`${displayPath(ctx.cwd, out)} is not a directory`, ExitCode.Invalid);
    mkdirSync(join(out, 'boot'), { recursive: true });
    // Copies, not links: the build context is sent to the image builder as it is.
    copyFileSync(built.kernelPath, join(out, 'boot', 'vmlinuz'));
    copyFileSync(built.initrdPath, join(out, 'boot', 'initrd.img'));
    const ref = r.guestImageRef(registry, plan, image.name);
    writeAtomic(
      join(out, 'Dockerfile'),
      [
        `# The guest image ${image.name} of plan sha256:${plan.digests.plan} for KubeVirt's kernelBoot:`,
        `# kernel ${built.kernelRelease}, initramfs sha256:${built.initrdSha256}. Written by mclc; do not edit.`,
        'FROM scratch',
        'COPY boot/vmlinuz /boot/vmlinuz',
        'COPY boot/initrd.img /boot/initrd.img',
        '',
      ].join('\n'),
      ctx.cwd,
    );
    writeAtomic(join(out, 'image.txt'), `${ref}\n`, ctx.cwd);
    ctx.err(`${image.name}: ${displayPath(ctx.cwd, out)} (build and push as ${ref})\n`);
  }
  return ExitCode.Ok;
}
