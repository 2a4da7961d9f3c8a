// What the Xen backend asks of the host's toolstack, behind one interface so
// that both ways of making an instance (a restore from the parked template's
// image, or a copy-on-write fork of the parked template) and every failure
// between their steps are unit-tested with a fake (test/fake-toolstack.ts).
// `XlToolstack` is the real one: Debian's `xl` (xen-utils-4.17) for what xl
// does (create, save, restore, unpause, destroy) and this backend's dom0
// helper `mcl-xen` (native/mcl-xen.c) for what it does not (the host check,
// the domain list with its page counts, fork, plumb, reset, the vchan relays).

import { spawn, type ChildProcess } from 'node:child_process';
import { Duplex, type Readable, type Writable } from 'node:stream';
import { execa } from 'execa';

/** What `mcl-xen check` reports about the hypervisor. */
export interface HostCaps {
  /** e.g. `4.17.7` plus the extra version. */
  version: string;
  hvm: boolean;
  hap: boolean;
  /** Intel VT-x (the fork needs it: xc_memshr_fork is Intel-only). */
  vmx: boolean;
  svm: boolean;
  /** XENMEM_sharing_op exists (Xen built with CONFIG_MEM_SHARING). */
  mem_sharing: boolean;
  /** FLASK: `enforcing`, `permissive`, `absent` (no XSM in this build), or `unknown`. */
  xsm: 'enforcing' | 'permissive' | 'absent' | 'unknown';
}

export type DomainState = 'running' | 'paused' | 'shutdown' | 'dying';

export interface DomainInfo {
  domid: number;
  /** The name in xenstore (`/local/domain/<domid>/name`); empty when it has none. */
  name: string;
  state: DomainState;
  /** Pages the domain has now (4 KiB each). */
  tot_pages: number;
  /** Of those, pages shared copy-on-write with its parent (a fork host). */
  shr_pages: number;
  cpu_time_ns: number;
}

/** dom0's end of one channel: a vchan server for the guest, its bytes here. */
export interface Relay {
  /** What the guest sends. */
  readonly output: Readable;
  /** What goes to the guest. */
  readonly input: Writable;
  readonly pid: number;
  /** Settles when the relay process ended (the guest closed the vchan, or it was stopped). */
  readonly exited: Promise<void>;
  stop(): void;
}

export interface Toolstack {
  check(): Promise<HostCaps>;
  list(): Promise<DomainInfo[]>;
  /** A new domain from an xl.cfg file, left paused; resolves with its domid. */
  create(cfgFile: string, name: string): Promise<number>;
  /** Saves a domain's memory and state to `image`; the domain is gone afterwards. */
  save(domid: number, image: string): Promise<void>;
  /** A domain restored from `image`, named and labelled by `cfgFile`, left paused. */
  restore(cfgFile: string, image: string, name: string): Promise<number>;
  /** A copy-on-write fork of the paused `parent`, labelled `label` (FLASK), left paused. */
  fork(parent: number, name: string, label?: string): Promise<number>;
  /** Gives a fork what forks do not inherit: xenstore introduction, store and console event channels. */
  plumb(domid: number, name: string): Promise<void>;
  /** Resets a fork to its parent's state and memory (xc_memshr_fork_reset). */
  reset(domid: number): Promise<void>;
  unpause(domid: number): Promise<void>;
  pause(domid: number): Promise<void>;
  /** Destroys a domain; one that is already gone is not an error. */
  destroy(domid: number): Promise<void>;
  /** Starts the vchan server of port slot `slot` for `domid` (slot 0: the control port). */
  relay(domid: number, slot: number): Relay;
}

/** The xenstore path of a slot's vchan; the guest reaches it as `data/mcl/p<slot>` (relative to its own directory). */
export function vchanPath(domid: number, slot: number): string {
  return `/local/domain/${domid}/data/mcl/p${slot}`;
}

/** A failure of the toolstack, with the command's words (bounded). */
export class ToolstackError extends Error {
  readonly kind = 'failure' as const;
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'ToolstackError';
  }
}

const MAX_OUTPUT = 64 * 1024;
const STEP_TIMEOUT_MS = 120_000;

/**
 * The bound on one `xl save` or `xl restore`: `$MCL_XEN_RESTORE_TIMEOUT_MS`
 * (at least 1 s), else 600 s. They copy the guest's whole memory through
 * dom0; on a loaded nested Xen one `xl restore` took 106 s and another was
 * killed at the 120 s every other step gets, only to be restored again.
 */
export function restoreTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  return envNumber(env, 'MCL_XEN_RESTORE_TIMEOUT_MS', 600_000, 1000);
}

/**
 * The whole number in `env[name]` when it is one from `min` to `max`, else
 * `fallback`: how every bound of this backend is read from the environment
 * (a malformed or out-of-range value keeps the default rather than failing).
 */
export function envNumber(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = env[name];
  return v && /^\d+$/.test(v) && Number(v) >= min && Number(v) <= max ? Number(v) : fallback;
}

export interface XlToolstackOptions {
  /** The dom0 helper (native/mcl-xen.c), built by native.ts. */
  helper: string;
  /** `xl`; default `$MCL_XL` or `xl` on PATH. */
  xl?: string;
  log?: (line: string) => void;
}

const DOMAIN_STATES: readonly string[] = ['running', 'paused', 'shutdown', 'dying'];

/** Parses `mcl-xen list`: one JSON object per line; lines of another shape are skipped. */
export function parseDomainList(text: string): DomainInfo[] {
  const out: DomainInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let v: Partial<DomainInfo>;
    try {
      v = JSON.parse(line) as Partial<DomainInfo>;
    } catch {
      continue;
    }
    const n = (x: unknown) => (typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 ? x : null);
    if (n(v.domid) === null || typeof v.name !== 'string' || !DOMAIN_STATES.includes(String(v.state))) continue;
    out.push({
      domid: v.domid!,
      name: v.name.slice(0, 64),
      state: v.state as DomainState,
      tot_pages: n(v.tot_pages) ?? 0,
      shr_pages: n(v.shr_pages) ?? 0,
      cpu_time_ns: n(v.cpu_time_ns) ?? 0,
    });
  }
  return out;
}

/** Parses `mcl-xen check`. */
export function parseHostCaps(text: string): HostCaps | null {
  try {
    const v = JSON.parse(text.trim().split('\n')[0] ?? '') as Partial<HostCaps>;
    if (typeof v.version !== 'string') return null;
    const b = (x: unknown) => x === true;
    const xsm = ['enforcing', 'permissive', 'absent'].includes(String(v.xsm)) ? (v.xsm as HostCaps['xsm']) : 'unknown';
    return { version: v.version.slice(0, 64), hvm: b(v.hvm), hap: b(v.hap), vmx: b(v.vmx), svm: b(v.svm), mem_sharing: b(v.mem_sharing), xsm };
  } catch {
    return null;
  }
}

export class XlToolstack implements Toolstack {
  private readonly xl: string;

  constructor(private readonly o: XlToolstackOptions) {
    this.xl = o.xl ?? process.env.MCL_XL ?? 'xl';
  }

  private async run(cmd: string, args: string[], what: string, timeoutMs = STEP_TIMEOUT_MS): Promise<string> {
    const r = await execa(cmd, args, { reject: false, all: true, timeout: timeoutMs, maxBuffer: MAX_OUTPUT, stdin: 'ignore' });
    if (r.exitCode !== 0) {
      const words = String(r.all ?? '').split('\n').filter((l) => l && !l.startsWith('Parsing config from')).slice(-8).join('; ');
      throw new ToolstackError(`${what} failed (${r.timedOut ? 'timed out' : `exit ${r.exitCode ?? r.signal}`}): ${words || r.shortMessage}`.slice(0, 2000));
    }
    return String(r.stdout ?? '');
  }

  async check(): Promise<HostCaps> {
    // Exit 2 only says that memory sharing is absent; the report is on stdout all the same.
    const r = await execa(this.o.helper, ['check'], { reject: false, all: false, timeout: 10_000, maxBuffer: MAX_OUTPUT });
    const caps = parseHostCaps(String(r.stdout ?? ''));
    if (!caps) throw new ToolstackError(`the Xen host check failed: ${String(r.stderr ?? r.shortMessage).slice(0, 500)}`, 'run mclc in dom0 of a Xen host, as root (it needs /dev/xen/privcmd)');
    return caps;
  }

  async list(): Promise<DomainInfo[]> {
    return parseDomainList(await this.run(this.o.helper, ['list'], 'listing the domains'));
  }

  private async domid(name: string): Promise<number> {
    const out = (await this.run(this.xl, ['domid', name], `finding domain ${name}`)).trim();
    const d = Number(out);
    if (!Number.isSafeInteger(d) || d <= 0) throw new ToolstackError(`xl domid ${name} printed ${JSON.stringify(out.slice(0, 40))}`);
    return d;
  }

  async create(cfgFile: string, name: string): Promise<number> {
    await this.run(this.xl, ['create', '-p', cfgFile], `creating domain ${name}`);
    return this.domid(name);
  }

  async save(domid: number, image: string): Promise<void> {
    await this.run(this.xl, ['save', String(domid), image], `saving domain ${domid}`, restoreTimeoutMs());
  }

  async restore(cfgFile: string, image: string, name: string): Promise<number> {
    await this.run(this.xl, ['restore', '-p', cfgFile, image], `restoring domain ${name}`, restoreTimeoutMs());
    return this.domid(name);
  }

  async fork(parent: number, name: string, label?: string): Promise<number> {
    const out = (await this.run(this.o.helper, ['fork', String(parent), name, ...(label ? [label] : [])], `forking domain ${parent}`)).trim();
    const d = Number(out);
    if (!Number.isSafeInteger(d) || d <= 0) throw new ToolstackError(`mcl-xen fork printed ${JSON.stringify(out.slice(0, 40))}`);
    return d;
  }

  async plumb(domid: number, name: string): Promise<void> {
    await this.run(this.o.helper, ['plumb', String(domid), name], `plumbing fork ${domid}`);
  }

  async reset(domid: number): Promise<void> {
    await this.run(this.o.helper, ['reset', String(domid)], `resetting fork ${domid}`);
  }

  async unpause(domid: number): Promise<void> {
    await this.run(this.xl, ['unpause', String(domid)], `unpausing domain ${domid}`);
  }

  async pause(domid: number): Promise<void> {
    await this.run(this.xl, ['pause', String(domid)], `pausing domain ${domid}`);
  }

  async destroy(domid: number): Promise<void> {
    if (!(await this.list()).some((d) => d.domid === domid)) return;
    // xl knows the domains it created or restored; a fork is the helper's (it removes its xenstore entries too).
    await this.run(this.xl, ['destroy', String(domid)], `destroying domain ${domid}`).catch(() => this.run(this.o.helper, ['destroy', String(domid)], `destroying domain ${domid}`));
  }

  relay(domid: number, slot: number): Relay {
    const child = spawn(this.o.helper, ['relay', String(domid), vchanPath(domid, slot)], { stdio: ['pipe', 'pipe', 'pipe'] });
    return processRelay(child, (line) => this.o.log?.(`relay d${domid} p${slot}: ${line}`));
  }
}

/** A relay over a child process's stdio; its stderr goes to `log`, bounded. */
export function processRelay(child: ChildProcess, log: (line: string) => void): Relay {
  let logged = 0;
  child.stderr?.on('data', (b: Buffer) => {
    if (logged > 16 * 1024) return;
    logged += b.length;
    for (const l of b.toString('utf8').split('\n')) if (l.trim()) log(l.slice(0, 500));
  });
  const exited = new Promise<void>((r) => {
    child.once('exit', () => r());
    child.once('error', () => r());
  });
  child.stdin?.on('error', () => undefined);
  child.stdout?.on('error', () => undefined);
  return {
    output: child.stdout!,
    input: child.stdin!,
    pid: child.pid ?? 0,
    exited,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}

/**
 * A stream over a relay's pipes that is destroyed without closing them. The
 * broker destroys the stream of a port it detaches or when it is replaced
 * (a plan whose wiring changed but whose instances are kept): the relay, the
 * vchan and the guest's end must outlive that, and the next broker gets a
 * new view. While no view is open the relay's output is paused, so nothing
 * the guest sends is lost.
 */
export function relayView(r: Pick<Relay, 'output' | 'input'>): Duplex {
  const { output, input } = r;
  const onData = (b: Buffer) => {
    if (!view.push(b)) output.pause();
  };
  const onEnd = () => view.push(null);
  const view: Duplex = new Duplex({
    read() {
      output.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      if (input.destroyed || input.writableEnded) return cb(new Error('the relay has ended'));
      input.write(chunk, (e) => cb(e ?? null));
    },
    final(cb) {
      // Ending the view does not end the relay's input: the guest's end stays open for the next view.
      cb();
    },
    destroy(err, cb) {
      output.off('data', onData);
      output.off('end', onEnd);
      output.pause();
      cb(err);
    },
  });
  view.on('error', () => undefined);
  if (output.readableEnded) view.push(null);
  else {
    output.on('data', onData);
    output.once('end', onEnd);
  }
  return view;
}
