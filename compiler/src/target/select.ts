// Choosing what to plan: the root system and the target, from `deploy`
// declarations in the entry files, the compile options, or the defaults (the
// only system no other system uses, and the prelude's `local` target).

import type { DeployDecl, Ident, ImageDecl, Placement, Span } from '@mcl/language';
import { hostLabel, hostWorkspaceKey, parseHostAddress } from '@mcl/plan/host';
import type { PlanInstance, PlanTarget, PlanTemplate } from '@mcl/plan';
import type { LabelOrder, PolicyInput, ScopedRule } from '../policy/types';
import { cloneCount, formatBytes, instancesUnder } from '../policy/resources';
import { planTargetOf } from '../plan/build';
import { hostRules, placeInstances } from './place';
import { Codes } from '@mcl/language';
import type { CompileOptions } from '../api';
import { Ctx, related, type DeclEntry, type Module } from '../context';
import type { Components, TargetInfo } from '../compose/components';
import type { SystemInfo, Systems } from '../compose/systems';
import { resolveRef, lookupPlain, visibleNames } from '../resolve/scope';
import { didYouMean } from '../util/suggest';
import type { Flat } from '../compose/elaborate';
import { CAPABILITIES, minGuestMemory } from './capabilities';

export interface Selection {
  root?: SystemInfo;
  /** When only checking a workspace with several root systems: all of them (each is checked, none is planned). */
  roots?: SystemInfo[];
  target?: TargetInfo;
  /**
   * A deploy to several targets (`deploy S to [a, b]`): all of them in deploy order, the first
   * being `target`; absent for one target. `placements` are the deploy's `place X on T` lines.
   */
  targets?: TargetInfo[];
  placements?: { file: string; place: Placement }[];
  /** Where the choice came from, for diagnostics. */
  origin?: { file: string; span: Span };
}

/** Finds a declaration named on the command line: `Name` or `module.path.Name`. */
function byOption(ctx: Ctx, entries: Module[], name: string, kind: 'system' | 'target'): DeclEntry | undefined {
  const dot = name.lastIndexOf('.');
  if (dot > 0) {
    const e = ctx.modules.get(name.slice(0, dot))?.decls.get(name.slice(dot + 1));
    return e?.kind === kind ? e : undefined;
  }
  for (const m of entries) {
    const r = lookupPlain(m, name);
    if (r.ok && r.entry.kind === kind) return r.entry;
  }
  const all = [...ctx.modules.values()].flatMap((m) => [...m.decls.values()]).filter((e) => e.kind === kind && e.name === name);
  return all.length === 1 ? all[0] : undefined;
}

export function select(ctx: Ctx, options: CompileOptions, systems: Systems, components: Components): Selection {
  // forEach and indexes rather than for-of over every module and declaration: this runs on every compile
  // (the language server's every edit, where every file is an entry), and until V8 optimises it for-of
  // makes an iterator result per element, collected inside the compile.
  const entries: Module[] = [];
  ctx.modules.forEach((m) => {
    if (m.isEntry) entries.push(m);
  });
  entries.sort((a, b) => (a.file < b.file ? -1 : 1));
  const anchor = entries[0] ? { file: entries[0].file, span: { start: 0, end: 0 } } : { file: options.entries[0] ?? '', span: { start: 0, end: 0 } };
  const deploys: { d: DeployDecl; m: Module }[] = [];
  for (let i = 0; i < entries.length; i++) {
    const m = entries[i];
    const decls = m.ast.decls;
    for (let j = 0; j < decls.length; j++) {
      const d = decls[j];
      if (d.kind === 'DeployDecl') deploys.push({ d, m });
    }
  }
  // When only checking (the editor passes every file of the workspace as an entry), several deploy
  // statements or root systems are normal: they are warnings then, and the first one is checked.
  const checking = options.emitPlan === false;
  for (const extra of deploys.slice(1)) {
    ctx.report(Codes.ConflictingDeploy, 'there is more than one `deploy` declaration', extra.m.file, extra.d.span, {
      severity: checking ? 'warning' : undefined,
      hint: 'keep one, or choose with `--system` and `--target`',
      related: [related(deploys[0].m.file, deploys[0].d.span, 'first deploy declaration')],
    });
  }
  const deploy = deploys[0];
  const sel: Selection = {};

  // The root system.
  let sysEntry: DeclEntry | undefined;
  // Every system of the workspace, read only without a deploy: listed then, not on every compile.
  const systemsOfWorkspace = () => [...ctx.modules.values()].filter((m) => !m.isStd).flatMap((m) => [...m.decls.values()]).filter((e) => e.kind === 'system');
  if (options.system) {
    sysEntry = byOption(ctx, entries, options.system, 'system');
    if (!sysEntry) {
      const allSystems = systemsOfWorkspace();
      ctx.report(Codes.NoSystemToDeploy, `no system \`${options.system}\``, anchor.file, anchor.span, {
        hint: didYouMean(options.system, allSystems.flatMap((e) => [e.name, e.qname])) ?? `the systems are ${allSystems.map((e) => `\`${e.qname}\``).join(', ') || 'none'}`,
      });
      return sel;
    }
    sel.origin = anchor;
  } else if (deploy) {
    if (deploy.d.system.parts.some((p) => !p.name)) return sel;
    sysEntry = resolveRef(ctx, deploy.m, deploy.d.system, ['system'], 'system');
    if (!sysEntry) return sel;
    sel.origin = { file: deploy.m.file, span: deploy.d.span };
  } else {
    const used = new Set<DeclEntry>();
    for (const s of systems.all()) for (const u of s.uses) used.add(u);
    const roots = systemsOfWorkspace().filter((e) => !used.has(e)).sort((a, b) => (a.qname < b.qname ? -1 : 1));
    if (roots.length === 0) {
      if (options.emitPlan !== false && !ctx.diagnostics.some((d) => d.severity === 'error')) {
        ctx.report(Codes.NothingToPlan, 'no system to plan: the sources declare none', anchor.file, anchor.span, {
          hint: 'declare a `system` that instantiates your components to get a plan',
        });
      }
      return sel;
    }
    if (roots.length > 1) {
      if (!checking) {
        ctx.report(Codes.NoSystemToDeploy, `which system should be deployed? ${roots.map((e) => `\`${e.qname}\``).join(', ')} are all root systems`, roots[0].module.file, roots[0].decl.name.span, {
          hint: `add \`deploy ${roots[0].name}\` to the entry file, or pass --system`,
          related: roots.slice(1).map((e) => related(e.module.file, e.decl.name.span, `\`${e.qname}\` is also a root system`)),
        });
        return sel;
      }
      sel.roots = roots.map((e) => systems.get(e)).filter((x): x is SystemInfo => !!x);
    } else {
      sysEntry = roots[0];
      sel.origin = { file: sysEntry.module.file, span: sysEntry.decl.name.span };
    }
  }
  if (sysEntry) {
    // A deployed system is instantiated with its defaults: a parameter without one has no value to plan with.
    for (const p of systems.params(sysEntry).values()) {
      if (p.decl.default && p.decl.default.kind !== 'MissingExpr') continue;
      const at = sel.origin ?? anchor;
      ctx.report(Codes.RequiredParameterNotSet, `system \`${sysEntry.name}\` is deployed, but its parameter \`${p.name}\` has no default`, at.file, at.span, {
        hint: `give \`${p.name}\` a default, or deploy a system that instantiates \`${sysEntry.name}\` with \`${p.name} = ...\``,
        related: [related(sysEntry.module.file, p.decl.name.span, 'declared here')],
      });
    }
    sel.root = systems.get(sysEntry);
  }

  // The target.
  let tEntry: DeclEntry | undefined;
  if (options.target) {
    tEntry = byOption(ctx, entries, options.target, 'target');
    if (!tEntry) {
      const targets = [...ctx.modules.values()].flatMap((m) => [...m.decls.values()]).filter((e) => e.kind === 'target');
      ctx.report(Codes.UnknownTarget, `no target \`${options.target}\``, anchor.file, anchor.span, {
        hint: didYouMean(options.target, targets.map((e) => e.name)) ?? `the targets are ${targets.map((e) => `\`${e.name}\``).join(', ') || 'none'}`,
      });
      return sel;
    }
  } else if (deploy?.d.targets && deploy.d.targets.length > 1) {
    return selectTargets(ctx, sel, deploy, components);
  } else if (deploy && (deploy.d.target ?? deploy.d.targets?.[0])?.name) {
    tEntry = deployTarget(ctx, deploy, (deploy.d.target ?? deploy.d.targets?.[0])!);
    if (!tEntry) return sel;
    if (deploy.d.placements?.length) sel.placements = deploy.d.placements.map((place) => ({ file: deploy.m.file, place }));
  } else {
    const m = deploy?.m ?? entries[0];
    const r = m ? lookupPlain(m, 'local') : { ok: false as const };
    if (r.ok && r.entry.kind === 'target') tEntry = r.entry;
    else {
      ctx.report(Codes.UnknownTarget, 'no target to plan for: there is no `deploy ... to T` and no `local` target', anchor.file, anchor.span, {
        hint: 'declare a target and write `deploy System to target_name`',
      });
      return sel;
    }
  }
  sel.target = components.target(tEntry);
  return sel;
}

/** Resolves a target named in a `deploy` (plain or qualified), reporting a name that is not one. */
function deployTarget(ctx: Ctx, deploy: { d: DeployDecl; m: Module }, t: Ident): DeclEntry | undefined {
  if (!t.name) return undefined;
  if (t.parts) {
    // `deploy S to infra.big`: a target declared in another module, resolved like any qualified name.
    if (t.parts.some((p) => !p.name)) return undefined;
    return resolveRef(ctx, deploy.m, { kind: 'QualifiedName', parts: t.parts, span: t.span }, ['target'], 'target');
  }
  const r = lookupPlain(deploy.m, t.name);
  if (!r.ok || r.entry.kind !== 'target') {
    ctx.report(Codes.UnknownTarget, `no target \`${t.name}\``, deploy.m.file, t.span, {
      hint: didYouMean(t.name, visibleNames(deploy.m, 'target')) ?? `declare it: \`target ${t.name} { backend kvm  memory 4GiB  vcpus 2 }\``,
    });
    return undefined;
  }
  ctx.reference(deploy.m.file, t.span, r.entry.symbol);
  return r.entry;
}

/**
 * `deploy S to [a, b]`: every target resolved, in order. They must share one backend (a plan has
 * one template layout and one set of capabilities) and deploy to different places: two targets
 * with the same host workspace, or two without a host, would be one deployment applied twice.
 */
function selectTargets(ctx: Ctx, sel: Selection, deploy: { d: DeployDecl; m: Module }, components: Components): Selection {
  const file = deploy.m.file;
  const infos: TargetInfo[] = [];
  let ok = true;
  const seen = new Map<DeclEntry, Ident>();
  const places = new Map<string, { t: TargetInfo; at: Ident }>();
  for (const t of deploy.d.targets ?? []) {
    const e = deployTarget(ctx, deploy, t);
    if (!e) {
      ok = false;
      continue;
    }
    const first = seen.get(e);
    if (first) {
      ctx.report(Codes.SameHostTwice, `target \`${t.name}\` is named twice in this deploy`, file, t.span, { hint: 'name each target once', related: [related(file, first.span, 'first named here')] });
      ok = false;
      continue;
    }
    seen.set(e, t);
    const info = components.target(e);
    if (!info) {
      ok = false;
      continue;
    }
    const key = hostWorkspaceKey(info.host);
    const other = places.get(key);
    if (other) {
      ctx.report(
        Codes.SameHostTwice,
        info.host === undefined
          ? `targets \`${other.t.entry.name}\` and \`${info.entry.name}\` both deploy to the machine mclc runs on`
          : `targets \`${other.t.entry.name}\` and \`${info.entry.name}\` both deploy to ${info.host}`,
        file,
        t.span,
        { hint: 'give each target of a deploy its own `host` (at most one may have none), or a different workspace path', related: [related(file, other.at.span, `\`${other.t.entry.name}\``)] },
      );
      ok = false;
    } else places.set(key, { t: info, at: t });
    if (infos.length > 0 && info.backend !== infos[0].backend) {
      ctx.report(Codes.MixedTargetBackends, `target \`${info.entry.name}\` uses backend \`${info.backend}\`, but \`${infos[0].entry.name}\` uses \`${infos[0].backend}\``, file, t.span, {
        hint: 'deploy one system to targets of one backend',
        related: [related(info.entry.module.file, info.entry.decl.name.span, `target \`${info.entry.name}\``)],
      });
      ok = false;
    }
    infos.push(info);
  }
  if (!ok || infos.length === 0) return sel;
  sel.target = infos[0];
  sel.targets = infos;
  sel.placements = (deploy.d.placements ?? []).map((place) => ({ file, place }));
  return sel;
}

/**
 * Reports what the target's backend cannot realise. A subtree elaboration
 * took over whole (`flat.pieces`) in which this check found nothing for the
 * same backend is skipped as a block: what the check reads of it (its
 * instances' settings, components and images) is the same objects, so it
 * would find nothing again. What it found nothing in is marked on each
 * subtree's piece for the next compile.
 */
export function checkCapabilities(ctx: Ctx, target: TargetInfo, flat: Flat): void {
  const caps = CAPABILITIES[target.backend];
  const tname = target.entry.name;
  const rel = [related(target.entry.module.file, target.entry.decl.name.span, `target \`${tname}\` uses backend \`${target.backend}\``)];
  // The taken-over subtrees to skip, in flat order (they do not overlap), as [start, end) of `flat.instances`.
  const skip: [number, number][] = [];
  for (const p of flat.pieces ?? []) if (p.reused && p.piece.clean === target.backend) skip.push([p.instances, p.instances + p.piece.instances.length]);
  // Where the check found something, by index into `flat.instances`, in increasing order.
  const found: number[] = [];
  // An image's `kernel` at a path of this machine, once per image (undefined when it has none).
  const kernels = new Map<DeclEntry, { value: string; span: Span } | undefined>();
  const seen = new Set<DeclEntry>();
  let next = 0;
  for (let i = 0; i < flat.instances.length; i++) {
    if (next < skip.length && i === skip[next][0]) {
      i = skip[next++][1] - 1;
      continue;
    }
    const fi = flat.instances[i];
    const { inst, comp } = fi;
    const at = inst.decl.name.span;
    // Whether the check finds something here, whether or not its report is new (one at a component is made once).
    let bad = false;
    if (inst.mode.mode === 'per_session' && !caps.perSession) {
      bad = true;
      ctx.report(Codes.BackendCannotRealise, `backend \`${target.backend}\` cannot give \`${fi.id}\` a fresh fork per session`, fi.module.file, at, {
        hint: `${caps.notes.perSession ?? 'the backend lacks per-session forks'}; use \`replicas N\` or a target with backend \`kvm\``,
        related: rel,
      });
    }
    if (inst.mode.mode === 'created' && !caps.factories) {
      bad = true;
      ctx.report(Codes.BackendCannotRealise, `backend \`${target.backend}\` cannot create instances of \`${fi.id}\` at run time`, fi.module.file, at, {
        hint: `${caps.notes.factories ?? 'the backend lacks run-time creation'}; use \`replicas N\` or a target with backend \`kvm\``,
        related: rel,
      });
    }
    if (inst.mode.mode === 'replicas' && inst.mode.replicas > 1 && !caps.replicas) {
      bad = true;
      ctx.report(Codes.BackendCannotRealise, `backend \`${target.backend}\` cannot run replicas of \`${fi.id}\``, fi.module.file, at, { hint: 'use a single instance or another backend', related: rel });
    }
    if (comp.ports.length + 1 > caps.maxPortSlots) {
      bad = true;
      ctx.report(Codes.BackendCannotRealise, `\`${comp.entry.name}\` has ${comp.ports.length} ports, more than backend \`${target.backend}\` can give one guest (${caps.maxPortSlots - 1})`, comp.entry.module.file, comp.entry.decl.name.span, {
        hint: 'split the component, or group operations into fewer protocols',
        related: rel,
      });
    }
    const least = minGuestMemory(caps, comp.ports.length + 1);
    if (inst.memory > 0 && inst.memory < least) {
      bad = true;
      const min = `${least / (1024 * 1024)}MiB`;
      const many = least > caps.minMemoryBytes ? ` with ${comp.ports.length} ports` : '';
      ctx.report(Codes.BackendCannotRealise, `\`${fi.id}\` has ${inst.memory / (1024 * 1024)}MiB of memory, less than a guest of backend \`${target.backend}\`${many} boots in (${min})`, fi.module.file, at, {
        hint: `give it at least \`memory ${min}\`${many ? ' (each port holds half a MiB of receive buffers in the guest)' : ''}`,
        related: rel,
      });
    }
    if (inst.vcpus > caps.maxVcpus) {
      bad = true;
      ctx.report(Codes.BackendCannotRealise, `\`${fi.id}\` asks for ${inst.vcpus} vCPUs, more than backend \`${target.backend}\` gives one guest (${caps.maxVcpus})`, fi.module.file, at, { hint: `use at most ${caps.maxVcpus}`, related: rel });
    }
    const img = fi.comp.image;
    if (!caps.customKernel && img) {
      let kernel = kernels.get(img);
      if (!kernels.has(img)) {
        const p = (img.decl as ImageDecl).props.find((q) => q.key.name === 'kernel');
        kernel = p?.value.kind === 'String' && p.value.value.startsWith('/') ? { value: p.value.value, span: p.value.span } : undefined;
        kernels.set(img, kernel);
      }
      // Reported once per image, at the property; every instance of it counts as one the check found something in.
      if (kernel && !seen.has(img)) {
        seen.add(img);
        ctx.report(Codes.BackendCannotRealise, `backend \`${target.backend}\` cannot boot image \`${img.name}\` with the kernel \`${kernel.value}\` of this machine`, img.module.file, kernel.span, {
          hint: `${caps.notes.customKernel ?? 'the backend boots only the stock kernel'}; write \`kernel "debian-cloud"\``,
          related: rel,
        });
      }
      if (kernel) bad = true;
    }
    if (bad) found.push(i);
  }
  // A subtree is clean when nothing was found in its range (a skipped one stays clean).
  for (const p of flat.pieces ?? []) {
    if (p.reused && p.piece.clean === target.backend) continue;
    const end = p.instances + p.piece.instances.length;
    let lo = 0;
    let hi = found.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (found[mid] < p.instances) lo = mid + 1;
      else hi = mid;
    }
    p.piece.clean = lo < found.length && found[lo] < end ? undefined : target.backend;
  }
  if (!caps.exposures) {
    for (const x of flat.exposures) {
      ctx.report(Codes.BackendCannotRealise, `backend \`${target.backend}\` cannot expose host ports`, x.file, x.span, { hint: 'remove the exposure or use backend `kvm`', related: rel });
    }
  }
}

/**
 * The placement of a deploy's instances (place.ts): pins resolved from the deploy's `place` lines
 * (a name that is no instance or system, or a target the deploy does not name, is reported), the
 * rest spread over the targets, and what fits on none reported at the instance. For a deploy to
 * one target it only checks the `place` lines and places nothing (the plan has no `targets`).
 */
export function placeDeploy(
  ctx: Ctx,
  sel: Selection,
  rules: readonly ScopedRule[],
  labels: LabelOrder,
  origins: PolicyInput['origins'],
  instances: readonly PlanInstance[],
  templates: readonly PlanTemplate[],
): Map<string, string> {
  const targets = sel.targets ?? (sel.target ? [sel.target] : []);
  const names = new Map(targets.map((t) => [t.entry.name, t]));
  const ids = instances.map((i) => i.id);
  const pins = new Map<string, string>();
  const depth = new Map<string, number>();
  for (const { file, place } of sel.placements ?? []) {
    if (!place.instance.name || !place.target.name) continue;
    const members = instancesUnder(instances, place.instance.name);
    if (members.length === 0) {
      ctx.report(Codes.UnknownPlacement, `\`place ${place.instance.name}\` names no instance or system of \`${sel.root?.entry.name ?? 'the system'}\``, file, place.instance.span, {
        hint: didYouMean(place.instance.name, ids) ?? 'name an instance or a nested system by its path from the deployed system (`shop.db`)',
      });
      continue;
    }
    const t = names.get(place.target.name);
    if (!t) {
      ctx.report(Codes.PlacementTargetNotDeployed, `\`${place.target.name}\` is not a target of this deploy`, file, place.target.span, {
        hint: didYouMean(place.target.name, [...names.keys()]) ?? `the deploy's targets are ${[...names.keys()].map((n) => `\`${n}\``).join(', ')}; add it to \`deploy ... to [...]\``,
      });
      continue;
    }
    ctx.reference(file, place.target.span, t.entry.symbol);
    // The longest (most specific) name wins: `place shop on a` and `place shop.db on b` put db on b.
    const d = place.instance.name.split('.').length;
    for (const m of members) {
      if ((depth.get(m.id) ?? 0) > d) continue;
      depth.set(m.id, d);
      pins.set(m.id, t.entry.name);
    }
  }
  if (!sel.targets || sel.targets.length < 2) return new Map();
  const planTargets = sel.targets.map(planTargetOf);
  const { placement, misfits } = placeInstances({ instances, templates, targets: planTargets, pins, rules: hostRules(instances, rules, labels) });
  for (const m of misfits) {
    const at = origins.instances[m.instance.id] ?? sel.origin;
    if (!at) continue;
    const where = (t: PlanTarget) => `\`${t.name}\` (${t.host ? hostLabelOf(t.host) : 'this machine'})`;
    const left = m.left.map((l) => `${where(l.target)} has ${formatBytes(Math.max(0, l.memory))} and ${Math.max(0, l.vcpus)} vCPUs left`).join(', ');
    ctx.report(
      Codes.InstanceDoesNotFit,
      `\`${m.instance.id}\` (${cloneCount(m.instance)} × ${formatBytes(m.instance.memory_bytes)}, an estimated ${formatBytes(m.memory)} and ${m.vcpus} vCPUs on a host) fits on none of the targets: ${left}`,
      at.file,
      at.span,
      { hint: 'lower its memory or clone count, pin smaller instances elsewhere with `place`, or add a target', related: sel.targets.map((t) => related(t.entry.module.file, t.entry.decl.name.span, `target \`${t.entry.name}\``)) },
    );
  }
  return placement;
}

function hostLabelOf(url: string): string {
  const parsed = parseHostAddress(url);
  return parsed.ok ? hostLabel(parsed.address) : url;
}
