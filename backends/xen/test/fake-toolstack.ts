// A Toolstack in memory for unit tests: domains with ids, names and states,
// saved images as a set of names, relays as in-memory streams with a fake
// guest agent behind the control slot (it answers hello and the identity as
// backends/kvm/guest/agent.sh does, once the domain runs). Any step can be
// made to fail once (`failNext`), to check that nothing is left behind.

import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { DomainInfo, HostCaps, Relay, Toolstack } from '../src/toolstack';

export type Step = 'check' | 'list' | 'create' | 'save' | 'restore' | 'fork' | 'plumb' | 'reset' | 'pause' | 'unpause' | 'destroy' | 'relay';

interface FakeDomain extends DomainInfo {
  cfg?: string;
  parent?: number;
  plumbed?: boolean;
  /** Dies before its agent answers (crashNextResumes). */
  doomed?: boolean;
  /** What dom0 said on the control slot (hello, the identity), line by line. */
  control: string[];
  /** Guest ends of the domain's relays, by slot. */
  guests: Map<number, { toGuest: PassThrough; toHost: PassThrough; stop(): void }>;
}

export class FakeToolstack implements Toolstack {
  readonly domains = new Map<number, FakeDomain>();
  readonly images = new Set<string>();
  readonly calls: string[] = [];
  private next = 1;
  private failing = new Map<Step, string>();
  /** Relays alive, for "nothing left behind". */
  readonly relays = new Set<Relay>();
  /** Program exit the fake agent reports right after `start`, when set. */
  programExitStatus: number | null = null;
  /** When false the fake agent never answers (a guest that hangs). */
  agentAnswers = true;
  /**
   * The next this many restored domains die right after they are unpaused (a
   * guest that panics while resuming), writing a panic line to their console
   * in `consoleDir` when it is set.
   */
  crashNextResumes = 0;
  consoleDir: string | null = null;
  private restored = new Set<number>();

  constructor(public caps: HostCaps = { version: '4.17.7', hvm: true, hap: true, vmx: false, svm: true, mem_sharing: false, xsm: 'absent' }) {}

  failNext(step: Step, message = `${step} failed (injected)`): void {
    this.failing.set(step, message);
  }

  private step(s: Step, detail: string): void {
    this.calls.push(`${s} ${detail}`.trim());
    const f = this.failing.get(s);
    if (f !== undefined) {
      this.failing.delete(s);
      throw new Error(f);
    }
  }

  private add(name: string, extra: Partial<FakeDomain> = {}): number {
    if ([...this.domains.values()].some((d) => d.name === name)) throw new Error(`domain ${name} already exists`);
    const domid = this.next++;
    this.domains.set(domid, { domid, name, state: 'paused', tot_pages: 32768, shr_pages: 0, cpu_time_ns: 0, guests: new Map(), control: [], ...extra });
    return domid;
  }

  async check(): Promise<HostCaps> {
    this.step('check', '');
    return this.caps;
  }

  async list(): Promise<DomainInfo[]> {
    this.step('list', '');
    return [...this.domains.values()].map(({ domid, name, state, tot_pages, shr_pages, cpu_time_ns }) => ({ domid, name, state, tot_pages, shr_pages, cpu_time_ns }));
  }

  async create(cfg: string, name: string): Promise<number> {
    this.step('create', name);
    return this.add(name, { cfg });
  }

  async save(domid: number, image: string): Promise<void> {
    this.step('save', String(domid));
    if (!this.domains.has(domid)) throw new Error(`no domain ${domid}`);
    this.images.add(image);
    // The runtime finds a saved image again by its file, as it would after `xl save`.
    writeFileSync(image, `saved d${domid}\n`);
    this.kill(domid);
  }

  /** A failing restore leaves the domain it made behind (as `xl restore` can when it gives up late). */
  restoreLeavesDomain = false;

  /** How long a restore takes (ms), and the most restores that ran at once. */
  restoreDelayMs = 0;
  restoresAtOnce = 0;
  private restoring = 0;

  async restore(cfg: string, image: string, name: string): Promise<number> {
    if (this.restoreLeavesDomain && this.failing.has('restore')) this.add(name, { cfg });
    this.step('restore', name);
    if (!this.images.has(image)) throw new Error(`no saved image ${image}`);
    this.restoresAtOnce = Math.max(this.restoresAtOnce, ++this.restoring);
    try {
      if (this.restoreDelayMs > 0) await new Promise((r) => setTimeout(r, this.restoreDelayMs));
    } finally {
      this.restoring--;
    }
    const domid = this.add(name, { cfg });
    this.restored.add(domid);
    return domid;
  }

  async fork(parent: number, name: string, label?: string): Promise<number> {
    this.step('fork', `${name}${label ? ` ${label}` : ''}`);
    const p = this.domains.get(parent);
    if (!p || p.state !== 'paused') throw new Error(`parent ${parent} is not a paused domain`);
    return this.add(name, { parent, shr_pages: 30000 });
  }

  async plumb(domid: number, name: string): Promise<void> {
    this.step('plumb', name);
    const d = this.domains.get(domid);
    if (!d) throw new Error(`no domain ${domid}`);
    d.plumbed = true;
  }

  async reset(domid: number): Promise<void> {
    this.step('reset', String(domid));
    const d = this.domains.get(domid);
    if (!d || d.parent === undefined) throw new Error(`${domid} is not a fork`);
    if (d.state !== 'paused') throw new Error(`fork ${domid} is not paused`);
    // Its vchans close with the state it is reset from.
    for (const g of d.guests.values()) g.stop();
    d.guests.clear();
  }

  async unpause(domid: number): Promise<void> {
    this.step('unpause', String(domid));
    const d = this.domains.get(domid);
    if (!d) throw new Error(`no domain ${domid}`);
    d.state = 'running';
    if (this.restored.delete(domid) && this.crashNextResumes > 0) {
      this.crashNextResumes--;
      d.doomed = true;
      if (this.consoleDir) appendFileSync(join(this.consoleDir, `guest-${d.name}.log`), 'BUG: unable to handle page fault for address: ffffffffff5fd000\nKernel panic - not syncing: Fatal exception in interrupt\n');
      setTimeout(() => this.kill(domid), 5);
    }
  }

  async pause(domid: number): Promise<void> {
    this.step('pause', String(domid));
    const d = this.domains.get(domid);
    if (!d) throw new Error(`no domain ${domid}`);
    d.state = 'paused';
  }

  async destroy(domid: number): Promise<void> {
    this.step('destroy', String(domid));
    this.kill(domid);
  }

  /** What `xl destroy` from outside, or a crash, does: the domain is gone, its vchans close. */
  kill(domid: number): void {
    const d = this.domains.get(domid);
    if (!d) return;
    this.domains.delete(domid);
    for (const g of d.guests.values()) g.stop();
  }

  relay(domid: number, slot: number): Relay {
    this.step('relay', `${domid} ${slot}`);
    const d = this.domains.get(domid);
    if (!d) throw new Error(`no domain ${domid}`);
    const toGuest = new PassThrough();
    const toHost = new PassThrough();
    let done!: () => void;
    const exited = new Promise<void>((r) => (done = r));
    let stopped = false;
    const stop = () => {
      if (stopped) return;
      stopped = true;
      this.relays.delete(relay);
      toHost.end();
      toGuest.destroy();
      done();
    };
    const relay: Relay = { output: toHost, input: toGuest, pid: 100000 + domid * 100 + slot, exited, stop };
    this.relays.add(relay);
    d.guests.set(slot, { toGuest, toHost, stop });
    if (slot === 0) this.agent(d, toGuest, toHost);
    return relay;
  }

  /** The fake agent: answers on the control slot while its domain runs. */
  private agent(d: FakeDomain, input: PassThrough, output: PassThrough): void {
    let buf = '';
    input.on('data', (b: Buffer) => {
      buf += b.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        d.control.push(line);
        if (d.state !== 'running' || d.doomed || !this.agentAnswers || !this.domains.has(d.domid)) continue;
        const [cmd, a] = line.split(' ');
        const say = (s: string) => output.write(`${s}\n`);
        if (cmd === 'hello') say(`ready ${a}`);
        else if (cmd === 'commit') say(`committed ${a}`);
        else if (cmd === 'start') {
          say(`started ${a} 42`);
          if (this.programExitStatus !== null) say(`exit 42 ${this.programExitStatus}`);
        }
      }
    });
  }
}
