// The Xen GuestRuntime: the KVM backend's supervisor (its ordering, restart
// policies, sessions, broker, state and status) runs unchanged on top of it,
// with domains where KVM has QEMU clones.
//
// A template is booted once as a PVH domain from a generated xl.cfg, with the
// same initramfs as on KVM plus the Xen guest modules and the vchan client.
// When its agent answers, dom0 closes the control vchan and saves the domain
// (`xl save`): the guest is parked at a point from which every instance
// resumes through Linux's own resume path. An instance is then made one of
// two ways, chosen per host (`instancePath`):
// - restore: `xl restore -p` of the saved image under the clone's name and
//   FLASK label (works everywhere, also in nested Xen; no page sharing);
// - fork: the saved image is restored once, paused, as the parent, and each
//   clone is an `xc_memshr_fork` of it (Intel VT-x, Xen with memory sharing),
//   then given what a fork does not inherit (`plumb`).
// Either way dom0 starts one vchan server per port slot (slot 0: the control
// port), unpauses the domain, and drives the same handshake as on KVM
// (hello/ready, then the identity with a fresh random seed).

import { existsSync, closeSync, fstatSync, mkdirSync, openSync, readSync, rmSync, statSync, writeFileSync, appendFileSync } from 'node:fs';
import { readBoundedFile } from '@mcl/plan/state-store';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { Plan, PlanImage } from '@mcl/plan';
import { programFor, type CloneHandle, type CloneRequest, type EventSink, type ExitInfo, type GuestRuntime } from '@mcl/backend-kvm/lifecycle';
import { ControlChannel, buildImage as kvmBuildImage, cacheDir, mclHome } from '@mcl/backend-kvm/vm';
import { buildPolicy, flaskLabel, flaskModule, instanceType, templateType } from './flask';
import { cloneDomainName, deploymentTag, isDeploymentDomain, templateDomainName } from './names';
import { GUEST_CLIENT, HELPER, nativeProgram } from './native';
import { type DomainInfo, envNumber, type HostCaps, type Relay, type Toolstack, relayView, XlToolstack } from './toolstack';
import { domainConfig } from './xlcfg';
import { prepareGuestTools, XEN_GUEST_MODULES } from './image';

export type InstancePath = 'fork' | 'restore';

/**
 * The bound on a template's cold boot to ready when the options give none:
 * `$MCL_XEN_BOOT_TIMEOUT_MS`, else 180 s. A nested Xen under TCG on a busy
 * machine boots a guest many times slower than that bound assumes.
 */
function bootTimeoutFromEnv(): number {
  return envNumber(process.env, 'MCL_XEN_BOOT_TIMEOUT_MS', 180_000, 1000);
}

/**
 * How this host makes instances: `fork` where the hypervisor shares memory
 * and the CPU is Intel with HAP (xc_memshr_fork's conditions), else
 * `restore`. `MCL_XEN_INSTANCES=restore` forces the restore path; forcing
 * `fork` on a host that cannot is refused with the reason.
 */
export function instancePath(caps: HostCaps, forced = process.env.MCL_XEN_INSTANCES): { path: InstancePath; why: string } {
  const missing = [!caps.mem_sharing && 'the hypervisor was built without memory sharing (CONFIG_MEM_SHARING)', !caps.vmx && 'the CPU is not Intel VT-x', !caps.hap && 'no hardware-assisted paging'].filter(
    (x): x is string => typeof x === 'string',
  );
  if (forced === 'restore') return { path: 'restore', why: 'MCL_XEN_INSTANCES=restore' };
  if (forced === 'fork' && missing.length) throw Object.assign(new Error(`MCL_XEN_INSTANCES=fork, but this host cannot fork domains: ${missing.join('; ')}`), { kind: 'failure' as const });
  return missing.length ? { path: 'restore', why: missing.join('; ') } : { path: 'fork', why: 'memory sharing on Intel VT-x with HAP' };
}

/**
 * Whether per-session forks go back to a pool reset with
 * xc_memshr_fork_reset after their session (Potemkin's model): on every fork
 * host unless `MCL_XEN_FORK_RESET=0`. A restore host has no forks to reset.
 */
export function forkResetPool(path: InstancePath, env: NodeJS.ProcessEnv = process.env): { on: boolean; why: string } {
  if (path !== 'fork') return { on: false, why: 'instances are restored, not forked' };
  if (env.MCL_XEN_FORK_RESET === '0') return { on: false, why: 'MCL_XEN_FORK_RESET=0' };
  return { on: true, why: 'a per-session fork is reset to its parent (xc_memshr_fork_reset) after its session and kept for the next one' };
}

/** What `xl.cfg`'s seclabel and the policy load need: whether the hypervisor has FLASK at all. */
export const hasFlask = (caps: HostCaps) => caps.xsm === 'enforcing' || caps.xsm === 'permissive';

export interface BuiltXenImage {
  kernelPath: string;
  initrdPath: string;
  key: string;
  cached: boolean;
  elapsedMs: number;
}

export interface XenRuntimeOptions {
  /** The deployment's run directory (saved images, configs, the policy live in `<runDir>/xen`). */
  runDir: string;
  /** The deployment's token: the tag in every domain name comes from it (names.ts). */
  token: string;
  /** Default: XlToolstack with the helper built by native.ts. */
  toolstack?: Toolstack;
  /** Default: the KVM image builder with the Xen modules and the vchan client added. */
  buildImage?: (image: PlanImage) => Promise<BuiltXenImage>;
  cacheDir?: string;
  /** Bound for a template's cold boot to ready; default 180 s (nested Xen under TCG is slow). */
  bootTimeoutMs?: number;
  /** How often the domain list is polled to notice domains that ended; default 1000 ms. */
  pollMs?: number;
  /** Where xenconsoled writes `guest-<name>.log`; default `$MCL_XEN_CONSOLE_DIR` or /var/log/xen/console. */
  consoleDir?: string;
  /** Loads a compiled FLASK policy (default: `flask-loadpolicy FILE`). */
  loadPolicy?: (file: string) => Promise<void>;
  log?: (line: string) => void;
  /** Waited after closing the template's control vchan, so the guest unmaps dom0's ring before the save. */
  parkDelayMs?: number;
  /**
   * On a fork host, keep the forks of per-session instances when their session ends, reset to the parent
   * with xc_memshr_fork_reset, for the next session (default: on, unless `MCL_XEN_FORK_RESET=0`; spec/xen.md).
   */
  forkReset?: boolean;
  /** Restores of one clone whose guest dies while resuming, at most (default `$MCL_XEN_RESTORE_ATTEMPTS` or 3). */
  restoreAttempts?: number;
}

interface Template {
  id: string;
  name: string;
  image: BuiltXenImage;
  /** The saved image every instance is made from. */
  saved: string;
  memoryBytes: number;
  vcpus: number;
  /** The paused parent of the forks (fork path only). */
  parent?: number;
  bootMs: number;
}

/** Bytes a clone's console copy may grow to; past it the copy stops with a note (xenconsoled keeps the whole log). */
const CONSOLE_COPY_LIMIT = 4 * 1024 * 1024;
const PAGE = 4096;

export class XenRuntime implements GuestRuntime {
  private ts: Toolstack | null;
  private caps: HostCaps | null = null;
  private path: InstancePath | null = null;
  private plan: Plan | null = null;
  private readonly tag: string;
  private readonly templates = new Map<string, Promise<Template>>();
  private readonly live = new Map<number, XenClone>();
  private latest = new Map<number, DomainInfo>();
  private poller: NodeJS.Timeout | null = null;
  private polling = false;
  private policyDigest: string | null = null;
  /** Forks of per-session instances reset after their session, paused, by instance id (fork reset only). */
  private readonly spares = new Map<string, { domid: number; name: string }[]>();
  /** The end of the last `xl restore` queued (oneAtATime). */
  private restoreTurn: Promise<void> = Promise.resolve();

  constructor(private readonly o: XenRuntimeOptions) {
    this.ts = o.toolstack ?? null;
    this.tag = deploymentTag(o.token);
  }

  private log(s: string): void {
    this.o.log?.(s);
  }

  private async toolstack(): Promise<Toolstack> {
    if (!this.ts) {
      const helper = await nativeProgram(HELPER, { cacheDir: this.o.cacheDir });
      this.ts = new XlToolstack({ helper, log: (l) => this.log(l) });
    }
    return this.ts;
  }

  private get dir(): string {
    const d = join(this.o.runDir, 'xen');
    mkdirSync(d, { recursive: true, mode: 0o700 });
    return d;
  }

  async accelerator(): Promise<{ name: string; note?: string }> {
    const ts = await this.toolstack();
    this.caps = await ts.check();
    const p = instancePath(this.caps);
    this.path = p.path;
    const notes: string[] = [];
    if (p.path === 'restore') notes.push(`instances are restored from the parked template's saved image, not forked: ${p.why} (slower, and no memory is shared)`);
    if (!hasFlask(this.caps)) notes.push('the hypervisor has no XSM/FLASK: the plan\'s FLASK policy is not enforced (guests are still given no channel but to dom0)');
    const pool = this.o.forkReset ?? forkResetPool(p.path).on;
    return { name: `xen ${this.caps.version} (${p.path}${p.path === 'fork' && pool ? ', reset pool' : ''})`, ...(notes.length ? { note: notes.join('; ') } : {}) };
  }

  /** Removes every domain whose name carries this deployment's tag (an earlier supervisor's). */
  async reapOrphans(): Promise<string[]> {
    const ts = await this.toolstack();
    const ours = (await ts.list()).filter((d) => isDeploymentDomain(this.tag, d.name));
    // Forks first: Xen keeps a parent until its last fork is gone.
    ours.sort((a, b) => Number(a.name.includes('-tpl.')) - Number(b.name.includes('-tpl.')));
    for (const d of ours) await ts.destroy(d.domid);
    return ours.map((d) => `${d.name} (d${d.domid})`);
  }

  async prepare(plan: Plan, templateIds: readonly string[], emit: EventSink): Promise<void> {
    this.plan = plan;
    if (!this.caps) await this.accelerator();
    const sessions = plan.instances.filter((i) => i.mode === 'per_session').map((i) => i.id);
    if (this.path === 'restore' && sessions.length) {
      emit({
        type: 'warning',
        message: `per-session instances (${sessions.join(', ')}) get a restore of their template per session on this host, which is slow (seconds, where a fork host forks in about a millisecond plus the guest's resume)`,
      });
    }
    await this.loadPolicy(plan, emit);
    for (const id of templateIds) await this.template(plan, id, emit);
  }

  /** Compiles the plan's FLASK policy and loads it, where the hypervisor has FLASK. */
  private async loadPolicy(plan: Plan, emit: EventSink): Promise<void> {
    if (!this.caps || !hasFlask(this.caps)) return;
    const module = flaskModule(plan);
    if (module === this.policyDigest) return;
    const built = await buildPolicy(module, { home: mclHome() });
    if (!built.ok) throw Object.assign(new Error(`the plan's FLASK policy does not compile: ${built.error}`), { kind: 'failure' as const, hint: 'apt-get install checkpolicy m4' });
    const file = join(this.dir, 'xenpolicy');
    writeFileSync(file, built.policy, { mode: 0o600 });
    await (this.o.loadPolicy ?? defaultLoadPolicy)(file);
    this.policyDigest = module;
    emit({ type: 'debug', message: `FLASK policy loaded (${built.policy.length} bytes, ${this.caps.xsm})` });
  }

  private template(plan: Plan, id: string, emit: EventSink): Promise<Template> {
    const t = plan.templates.find((x) => x.id === id);
    if (!t) throw new Error(`the plan has no template ${id}`);
    const img = plan.images.find((i) => i.name === t.image);
    if (!img) throw new Error(`the plan has no image ${t.image} (used by template ${id})`);
    const key = `${id}:${img.digest}:${t.memory_bytes}:${t.vcpus}`;
    let p = this.templates.get(key);
    if (!p) {
      p = this.bootTemplate(id, img, t.memory_bytes, t.vcpus, emit);
      this.templates.set(key, p);
      p.catch(() => this.templates.delete(key));
    }
    return p;
  }

  private async buildImage(img: PlanImage): Promise<BuiltXenImage> {
    if (this.o.buildImage) return this.o.buildImage(img);
    const client = await nativeProgram(GUEST_CLIENT, { cacheDir: this.o.cacheDir });
    const tools = await prepareGuestTools(client, { cacheDir: this.o.cacheDir });
    const b = await kvmBuildImage({ name: img.name, kernel: img.kernel, modules: [...img.modules, ...XEN_GUEST_MODULES], files: img.files }, { cacheDir: this.o.cacheDir, guestToolsDir: tools });
    return { kernelPath: b.kernelPath, initrdPath: b.initrdPath, key: b.key, cached: b.cached, elapsedMs: b.elapsedMs };
  }

  private async bootTemplate(id: string, img: PlanImage, memoryBytes: number, vcpus: number, emit: EventSink): Promise<Template> {
    const ts = await this.toolstack();
    emit({ type: 'image', image: img.name, action: 'start', message: `building image ${img.name}` });
    const image = await this.buildImage(img);
    emit({ type: 'image', image: img.name, action: image.cached ? 'cached' : 'built', elapsed_ms: image.elapsedMs, message: `image ${img.name} ${image.cached ? 'cached' : `built in ${image.elapsedMs} ms`}` });
    emit({ type: 'template', template: id, action: 'start', message: `template ${id}: booting a PVH domain` });
    // The name carries the image and shape: a changed template boots beside the old one's parent, whose forks
    // may still run, instead of failing on a name in use.
    const name = templateDomainName(this.tag, `${id}-${createHash('sha256').update(`${image.key}:${memoryBytes}:${vcpus}`).digest('hex').slice(0, 6)}`);
    const cfg = join(this.dir, `${name}.cfg`);
    const saved = join(this.dir, `${name}.img`);
    const labelled = this.caps && hasFlask(this.caps);
    writeFileSync(cfg, domainConfig({ name, kernel: image.kernelPath, ramdisk: image.initrdPath, memoryBytes, vcpus, ...(labelled ? { seclabel: flaskLabel(templateType(id)) } : {}), comment: `mcl template ${id}` }));
    // A saved image of the same template in the run directory (an earlier supervisor of this deployment saved
    // it: the watchdog restarted the supervisor, or the plan came back) is used again instead of booting.
    const meta = `${saved}.json`;
    const want = JSON.stringify({ key: image.key, memoryBytes, vcpus, labelled: !!labelled });
    if (existsSync(saved) && readSmall(meta) === want) {
      const parent = this.path === 'fork' ? await ts.restore(cfg, saved, name) : undefined;
      emit({ type: 'template', template: id, action: 'cached', message: `template ${id}: its saved image is used again${parent ? ` (parent of forks: d${parent})` : ''}` });
      return { id, name, image, saved, memoryBytes, vcpus, bootMs: 0, ...(parent ? { parent } : {}) };
    }
    rmSync(meta, { force: true });
    const started = Date.now();
    let domid: number | null = null;
    let relay: Relay | null = null;
    try {
      domid = await ts.create(cfg, name);
      relay = ts.relay(domid, 0);
      const ctl = ControlChannel.over(relayView(relay));
      await ts.unpause(domid);
      await ctl.handshake(this.o.bootTimeoutMs ?? bootTimeoutFromEnv());
      const bootMs = Date.now() - started;
      // Parked with no vchan open: the guest's client keeps retrying, and finds its new server after a restore.
      ctl.close();
      relay.stop();
      await relay.exited;
      relay = null;
      await new Promise((r) => setTimeout(r, this.o.parkDelayMs ?? 500));
      const t0 = Date.now();
      await ts.save(domid, saved);
      domid = null;
      writeFileSync(meta, want, { mode: 0o600 });
      let parent: number | undefined;
      if (this.path === 'fork') parent = await ts.restore(cfg, saved, name);
      emit({ type: 'template', template: id, action: 'booted', elapsed_ms: bootMs, message: `template ${id} booted in ${bootMs} ms and parked in ${Date.now() - t0} ms${parent ? ` (parent of forks: d${parent})` : ''}` });
      this.log(`${name}: cold boot to ready in ${bootMs} ms, saved in ${Date.now() - t0} ms (${statSync(saved).size} bytes)`);
      return { id, name, image, saved, memoryBytes, vcpus, bootMs, ...(parent ? { parent } : {}) };
    } catch (e) {
      relay?.stop();
      if (domid !== null) await ts.destroy(domid).catch(() => undefined);
      const consoleLog = join(this.o.consoleDir ?? process.env.MCL_XEN_CONSOLE_DIR ?? '/var/log/xen/console', `guest-${name}.log`);
      throw Object.assign(new Error(`template ${id} (domain ${name}) did not boot and park: ${(e as Error).message}`), {
        kind: 'failure' as const,
        hint: `see the guest console in ${consoleLog} (xenconsoled --log=guest) and \`mclc doctor\``,
      });
    }
  }

  async fork(req: CloneRequest): Promise<CloneHandle> {
    const plan = this.plan;
    if (!plan) throw new Error('fork before prepare');
    const ts = await this.toolstack();
    const tpl = await this.template(plan, req.instance.template, () => undefined);
    // A restore can fail where other restores of the same image succeed, both seen on nested Xen under load:
    // `xl restore` itself gives up (libxl waits a fixed 10 s for xenconsoled to publish the console's tty,
    // `console_xswait_callback: ... console tty: timed out`), or the restored guest dies in its first moments
    // after the resume (a panic in the first interrupt after Linux's resume path). Such a clone is restored
    // again, a bounded number of times, and every retry is reported (the clone's startNotes, its console
    // log, the supervisor's log); a guest that merely answers late is not retried: a retry would only
    // double the wait.
    const attempts = this.o.restoreAttempts ?? restoreAttemptsFromEnv();
    const notes: string[] = [];
    for (let attempt = 1; ; attempt++) {
      try {
        const clone = await this.forkOnce(req, tpl, ts);
        clone.startNotes = notes;
        return clone;
      } catch (e) {
        if ((e as { spareFailed?: boolean }).spareFailed) {
          const note = `a fork reset after an earlier session did not come back (${(e as Error).message}); forked afresh`;
          notes.push(note);
          this.log(`${cloneDomainName(this.tag, req.instance.id, req.index)}: ${note}`);
          attempt--;
          continue;
        }
        const died = (e as { guestDied?: string }).guestDied;
        const failed = (e as { restoreFailed?: boolean }).restoreFailed ? (e as Error).message : undefined;
        if ((died === undefined && failed === undefined) || attempt >= attempts) {
          if (attempt > 1) (e as Error).message += ` (after ${attempt} restores; ${notes.join('; ')})`;
          throw e;
        }
        const note = died !== undefined ? `restore ${attempt} of ${attempts} died while resuming (${died}); restored again` : `restore ${attempt} of ${attempts} failed (${failed}); restored again`;
        notes.push(note);
        this.log(`${cloneDomainName(this.tag, req.instance.id, req.index)}: ${note}`);
        req = { ...req, consoleHeader: `${req.consoleHeader ? `${req.consoleHeader}\n` : ''}--- mcl: ${note} ---` };
      }
    }
  }

  private async forkOnce(req: CloneRequest, tpl: Template, ts: Toolstack): Promise<XenClone> {
    let name = cloneDomainName(this.tag, req.instance.id, req.index);
    const label = this.caps && hasFlask(this.caps) ? flaskLabel(instanceType(req.instance.id)) : undefined;
    const started = Date.now();
    let domid: number | null = null;
    const relays: Relay[] = [];
    let console: ConsoleCopy | null = null;
    /** While `xl restore` runs: a failure then may leave a half-made domain of this name, and is worth a retry. */
    let restoring = false;
    /** When the toolstack's step began (a restore waits for its turn first). */
    let began = started;
    const reusable = this.path === 'fork' && tpl.parent !== undefined && req.instance.mode === 'per_session' && (this.o.forkReset ?? forkResetPool(this.path).on);
    const spare = reusable ? this.spares.get(req.instance.id)?.shift() : undefined;
    try {
      if (!spare) {
        // A domain of this name left by an earlier run of the same clone would make the next step fail.
        for (const d of (await ts.list()).filter((x) => x.name === name)) await ts.destroy(d.domid);
      }
      if (spare) {
        // A fork reset after an earlier session: it keeps its name, its xenstore introduction and its event channels.
        domid = spare.domid;
        name = spare.name;
      } else if (this.path === 'fork' && tpl.parent !== undefined) {
        domid = await ts.fork(tpl.parent, name, label);
        await ts.plumb(domid, name);
      } else {
        restoring = true;
        const cfg = join(req.dir, 'domain.cfg');
        writeFileSync(cfg, domainConfig({ name, kernel: tpl.image.kernelPath, ramdisk: tpl.image.initrdPath, memoryBytes: tpl.memoryBytes, vcpus: tpl.vcpus, ...(label ? { seclabel: label } : {}), comment: `mcl instance ${req.instance.id} clone ${req.index}` }));
        domid = await this.oneAtATime(() => {
          began = Date.now();
          return ts.restore(cfg, tpl.saved, name);
        });
        restoring = false;
      }
      // The toolstack's part (xl restore, or fork and plumb) apart from the guest's (resume, agent, identity):
      // the log gives both, since on a slow host they are slow for different reasons.
      const made = Date.now();
      const control = ts.relay(domid, 0);
      relays.push(control);
      const portRelays: Record<string, Relay> = {};
      for (const p of req.instance.ports) {
        const r = ts.relay(domid, p.slot);
        relays.push(r);
        portRelays[p.name] = r;
      }
      console = new ConsoleCopy(join(this.o.consoleDir ?? process.env.MCL_XEN_CONSOLE_DIR ?? '/var/log/xen/console', `guest-${name}.log`), join(req.dir, 'console.log'), req.consoleHeader);
      const ctl = ControlChannel.over(relayView(control));
      const clone = new XenClone(this, ts, domid, relays, ctl, portRelays, console, () =>
        ctl.sendIdentity(
          { instanceId: req.instance.id, clone: req.index, ports: req.instance.ports.map((p) => ({ name: p.name, slot: p.slot })), program: programFor(req.instance, req.index) },
          req.readyTimeoutMs,
        ),
        req.readyTimeoutMs,
        reusable ? (d: number, n: string) => this.recycle(req.instance.id, d, n) : undefined,
        name,
      );
      this.live.set(domid, clone);
      this.startPolling();
      if (!req.paused) await clone.start();
      // Status reports the clone's memory and CPU time from the latest domain list: one read now, so that a
      // status right after apply has them without waiting for the next poll (seconds, in a slow dom0).
      await this.refresh(ts, domid);
      const done = Date.now();
      this.log(`${name}: d${domid} ${this.path === 'fork' ? 'forked' : 'restored'} and ${req.paused ? 'left paused' : 'ready'} in ${done - started} ms (${began > started ? `waited ${began - started} ms for its turn, ` : ''}toolstack ${made - began} ms, guest ${done - made} ms)`);
      return clone;
    } catch (e) {
      if (domid !== null) this.live.delete(domid);
      for (const r of relays) r.stop();
      console?.stop();
      // Whether the guest died under us (a crash or panic in the resume), as against answering late or the
      // toolstack failing: only a restored guest that died is worth another restore.
      // A fork kept from an earlier session that does not come back is not the instance's failure: the
      // caller forks afresh from the parent.
      if (spare && e instanceof Error) (e as Error & { spareFailed?: boolean }).spareFailed = true;
      if (domid !== null && !spare && this.path !== 'fork' && !req.paused && e instanceof Error) {
        const d = (await ts.list().catch(() => null))?.find((x) => x.domid === domid);
        if (d === undefined || d.state === 'shutdown' || d.state === 'dying') {
          const panic = console ? lastPanicLine(console.from, console.start) : null;
          (e as Error & { guestDied?: string }).guestDied = `${d ? `domain ${d.state}` : 'domain gone'}${panic ? `: ${panic}` : ''}; ${e.message}`;
        }
      }
      if (domid !== null) await ts.destroy(domid).catch(() => undefined);
      if (restoring && e instanceof Error) {
        (e as Error & { restoreFailed?: boolean }).restoreFailed = true;
        // xl may have made the domain before it gave up: nothing of this clone's name is left behind.
        for (const d of (await ts.list().catch(() => [])).filter((x) => x.name === name)) await ts.destroy(d.domid).catch(() => undefined);
      }
      throw e;
    }
  }

  /** Pauses a fork whose session ended and resets it to its parent, for the next session; false when it cannot be. */
  private async recycle(instance: string, domid: number, name: string): Promise<boolean> {
    const ts = this.ts;
    if (!ts) return false;
    try {
      await ts.pause(domid);
      await ts.reset(domid);
    } catch (e) {
      this.log(`${name}: not kept for the next session: ${(e as Error).message}`);
      return false;
    }
    const list = this.spares.get(instance) ?? [];
    list.push({ domid, name });
    this.spares.set(instance, list);
    return true;
  }

  /** Destroys the forks kept for sessions and the parked parents (fork path); the saved images stay. */
  async release(): Promise<void> {
    const ts = this.ts;
    const spares = [...this.spares.values()].flat();
    this.spares.clear();
    for (const s of spares) await ts?.destroy(s.domid).catch(() => undefined);
    const all = [...this.templates.values()];
    this.templates.clear();
    for (const p of all) {
      const t = await p.catch(() => null);
      if (t?.parent !== undefined && ts) await ts.destroy(t.parent).catch(() => undefined);
    }
    if (this.live.size === 0 && this.poller) {
      clearInterval(this.poller);
      this.poller = null;
    }
  }

  /** The hypervisor's last word on a domain (from the latest poll). */
  info(domid: number): DomainInfo | undefined {
    return this.latest.get(domid);
  }

  /**
   * Runs `xl restore`s one after the other (the guests of earlier restores resume meanwhile). Restores at once
   * compete for dom0's CPUs with xenconsoled, and libxl gives xenconsoled a fixed 10 s to publish each new
   * console (`console_xswait_callback: ... console tty: timed out`, seen on the sixth of seven concurrent
   * restores on a loaded nested Xen); one at a time, each has dom0's CPUs to itself. The guests' resumes
   * still overlap.
   */
  private oneAtATime<T>(step: () => Promise<T>): Promise<T> {
    const run = this.restoreTurn.then(step);
    this.restoreTurn = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Reads the domain list once for one domain's figures (memory, CPU time); a failed read is the next poll's. */
  private async refresh(ts: Toolstack, domid: number): Promise<void> {
    const d = (await ts.list().catch(() => [])).find((x) => x.domid === domid);
    if (d) this.latest.set(domid, d);
  }

  forget(domid: number): void {
    this.live.delete(domid);
  }

  private startPolling(): void {
    if (this.poller) return;
    this.poller = setInterval(() => void this.poll(), this.o.pollMs ?? 1000);
    this.poller.unref();
  }

  /** Notices domains that ended (crashed, powered off, destroyed from outside with `xl destroy`). */
  async poll(): Promise<void> {
    if (this.polling || !this.ts) return;
    this.polling = true;
    try {
      const list = await this.ts.list();
      this.latest = new Map(list.map((d) => [d.domid, d]));
      for (const [domid, clone] of [...this.live]) {
        const d = this.latest.get(domid);
        // A domain that shut down is destroyed here when nothing else did (xl's monitor does it for the domains xl
        // made, by on_poweroff/on_crash; nothing watches a fork).
        if (!d || d.state === 'shutdown' || d.state === 'dying') clone.gone(d ? `domain ${d.state}` : 'domain destroyed', d?.state === 'shutdown');
      }
    } catch (e) {
      this.log(`listing the domains failed: ${(e as Error).message}`);
    } finally {
      this.polling = false;
    }
  }
}

/**
 * The bound on restores of one clone whose guest dies while resuming:
 * `$MCL_XEN_RESTORE_ATTEMPTS` (1 to 10), else 3.
 */
function restoreAttemptsFromEnv(): number {
  return envNumber(process.env, 'MCL_XEN_RESTORE_ATTEMPTS', 3, 1, 10);
}

/** Lines of a guest console that say the kernel died. */
const PANIC_LINE = /Kernel panic|PANIC: double fault|BUG: unable to handle|general protection fault|kernel stack overflow|Oops:/;

/**
 * The last line of a guest's console (its last 64 KiB after `from`) that says its kernel
 * died, cut to 200 characters, or null. The console is the guest's: it is
 * only searched, within a bound, and quoted as text.
 */
export function lastPanicLine(file: string, from = 0): string | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return null;
  }
  try {
    const size = fstatSync(fd).size;
    // Only what this run of the domain wrote: xenconsoled appends the runs of one name to one file.
    const start = size < from ? 0 : from;
    const buf = Buffer.alloc(Math.min(size - start, 65_536));
    const n = readSync(fd, buf, 0, buf.length, size - buf.length);
    const lines = buf.subarray(0, n).toString('utf8').split(/\r?\n/).filter((l) => PANIC_LINE.test(l));
    // eslint-disable-next-line no-control-regex
    return lines.length ? lines[lines.length - 1].replace(/[\x00-\x1f\x7f]/g, ' ').trim().slice(0, 200) : null;
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/** A small file of ours, or null when it is missing, not a regular file or larger than 4 KiB. */
function readSmall(path: string): string | null {
  const r = readBoundedFile(path, 4096, { noFollow: true });
  return r.ok ? r.text : null;
}

async function defaultLoadPolicy(file: string): Promise<void> {
  const { execa } = await import('execa');
  const r = await execa('flask-loadpolicy', [file], { reject: false, all: true, timeout: 30_000 });
  if (r.exitCode !== 0) throw Object.assign(new Error(`flask-loadpolicy failed: ${String(r.all ?? r.shortMessage).slice(0, 1000)}`), { kind: 'failure' as const, hint: 'it is in xen-utils; the hypervisor must be built with XSM and booted with flask=enforcing or permissive' });
}

/**
 * Copies what xenconsoled logs for a domain into the clone's console.log,
 * from where that file ended when the clone started (a restarted clone of the
 * same name appends to the same xenconsoled file), at most 64 KiB per tick
 * and CONSOLE_COPY_LIMIT in all.
 */
class ConsoleCopy {
  private offset: number;
  /** Where this clone's part of xenconsoled's file begins. */
  readonly start: number;
  private copied = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly from: string,
    readonly to: string,
    header?: string,
  ) {
    this.offset = existsSync(from) ? statSync(from).size : 0;
    this.start = this.offset;
    writeFileSync(to, header ? `${header}\n` : '', { mode: 0o600 });
    this.timer = setInterval(() => this.tick(), 500);
    this.timer.unref();
  }

  tick(): void {
    if (this.copied >= CONSOLE_COPY_LIMIT) return;
    let fd: number;
    try {
      fd = openSync(this.from, 'r');
    } catch {
      return;
    }
    try {
      if (fstatSync(fd).size < this.offset) this.offset = 0;
      const buf = Buffer.alloc(65_536);
      const n = readSync(fd, buf, 0, buf.length, this.offset);
      if (n <= 0) return;
      this.offset += n;
      this.copied += n;
      appendFileSync(this.to, buf.subarray(0, n));
      if (this.copied >= CONSOLE_COPY_LIMIT) appendFileSync(this.to, `\n--- mcl: console copy stopped at ${CONSOLE_COPY_LIMIT} bytes; the rest is in ${this.from} ---\n`);
    } catch {
      // The console copy must never take the supervisor down.
    } finally {
      closeSync(fd);
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.tick();
  }
}

class XenClone implements CloneHandle {
  readonly pid: number;
  readonly startTime: number | null = null;
  readonly exited: Promise<ExitInfo>;
  readonly consoleLog: string;
  /** What happened while it started that an operator should know (restores retried after the guest died). */
  startNotes: readonly string[] = [];
  /**
   * A stream per data port, new each time it is read (the supervisor reads it once per attach to a broker),
   * the one before it destroyed: brokers come and go while the clone and its relays stay.
   */
  readonly portSockets: Record<string, Duplex> = {};
  private readonly views = new Map<string, Duplex>();
  private resolveExit!: (e: ExitInfo) => void;
  private ended = false;
  private programCode: number | undefined;

  constructor(
    private readonly rt: XenRuntime,
    private readonly ts: Toolstack,
    readonly domid: number,
    private readonly relays: Relay[],
    private readonly ctl: ControlChannel,
    ports: Record<string, Relay>,
    private readonly console: ConsoleCopy,
    private readonly identify: () => Promise<unknown>,
    private readonly readyTimeoutMs: number,
    /** Keeps the domain for another session instead of destroying it when stopped; false: destroy it after all. */
    private readonly recycle?: (domid: number, name: string) => Promise<boolean>,
    private readonly domainName = '',
  ) {
    // The control relay stands for the clone among processes: the supervisor records its pid.
    this.pid = relays[0].pid;
    this.consoleLog = console.to;
    this.exited = new Promise((r) => (this.resolveExit = r));
    for (const [name, relay] of Object.entries(ports)) {
      Object.defineProperty(this.portSockets, name, {
        enumerable: true,
        get: () => {
          this.views.get(name)?.destroy();
          const v = relayView(relay);
          this.views.set(name, v);
          return v;
        },
      });
    }
    // The program ending ends the clone, as on KVM: its status drives the restart policy.
    const programEnded = (e: { status: number }) => {
      if (this.programCode !== undefined) return;
      this.programCode = e.status;
      void this.finish('program exited', true);
    };
    ctl.on('exit', programEnded);
    if (ctl.programExit) programEnded(ctl.programExit);
    // dom0's end of the control port ends when the domain did (its vchan closed), or on its own: either way
    // the guest is unreachable and the clone is gone. Which of the two decides how the exit counts.
    void relays[0].exited.then(async () => {
      if (this.ended) return;
      const d = (await ts.list().catch(() => [])).find((x) => x.domid === domid);
      if (d && (d.state === 'running' || d.state === 'paused')) void this.finish('its control vchan relay ended', true);
      else void this.finish(d ? `domain ${d.state}` : 'domain destroyed', false);
    });
  }

  /** Unpauses the domain and gives the guest its identity (hello/ready, then the identity with a fresh seed). */
  async start(): Promise<void> {
    await this.ts.unpause(this.domid);
    await this.ctl.handshake(this.readyTimeoutMs);
    await this.identify();
  }

  async resume(): Promise<void> {
    await this.start();
  }

  /** The domain ended on its own (seen by the poll); `destroy`: what is left of it is destroyed. */
  gone(why: string, destroy = false): void {
    void this.finish(why, destroy);
  }

  private async finish(why: string, destroy: boolean): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.rt.forget(this.domid);
    for (const r of this.relays) r.stop();
    this.ctl.close();
    this.console.stop();
    if (destroy) await this.ts.destroy(this.domid).catch(() => undefined);
    this.resolveExit({
      code: null,
      signal: null,
      ...(this.programCode !== undefined ? { program_code: this.programCode } : {}),
      // Without a program status the domain's end reads like a kill, and counts as a failure for `on-failure`;
      // dom0's relay dying is not the guest's doing and is not counted against its policy.
      ...(this.programCode === undefined && why.includes('relay') ? { signal: 'the loss of its control vchan', helper: why } : {}),
      ...(this.programCode === undefined && why.startsWith('domain') ? { signal: `its domain ending (${why})` } : {}),
    });
  }

  async stop(): Promise<void> {
    if (!this.recycle || this.ended) return this.finish('stopped', true);
    // Kept when its session ended (reset to the parent for the next one); destroyed when it cannot be.
    const recycle = this.recycle;
    const kept = new Promise<boolean>((r) => {
      void this.finish('stopped', false).then(async () => r(await recycle(this.domid, this.domainName)));
    });
    if (!(await kept)) await this.ts.destroy(this.domid).catch(() => undefined);
  }

  /** Memory from the hypervisor: pages the domain has, and of those the ones it shares with its parent. */
  memory(): { rss_bytes: number; pss_bytes: number; private_bytes: number } | undefined {
    const d = this.rt.info(this.domid);
    if (!d) return undefined;
    const priv = Math.max(0, d.tot_pages - d.shr_pages) * PAGE;
    return { rss_bytes: d.tot_pages * PAGE, pss_bytes: priv, private_bytes: priv };
  }

  cpuMs(): number | undefined {
    const d = this.rt.info(this.domid);
    return d ? Math.round(d.cpu_time_ns / 1e6) : undefined;
  }
}
