// The kube broker's side of each guest's control port: what the KVM
// supervisor does over a clone's control port (spec/guest.md, "Control
// protocol"), over the TCP transport of a KubeVirt machine. The protocol
// client is the KVM backend's own (ControlChannel: the nonce'd handshake, the
// identity with its seed, parameters, files and program); this module only
// dials it, authenticates, and decides when to send the identity.
//
// A machine boots on its own (KubeVirt starts and restarts it), so the broker
// cannot know from its own memory whether a guest already runs its program:
// it restarted, or its connection dropped while the guest ran on. After the
// handshake it asks (`query`), and sends the identity only to a guest that
// has none. A program that ends is started again in the same machine as the
// instance's restart policy says, with the supervisor's backoff.

import { createHmac } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { BrokerLogEntry } from '@mcl/broker';
import type { PlanInstance } from '@mcl/plan';
import { ControlChannel, type ProgramExit } from '@mcl/backend-kvm/vm';
import { programFor, RESTART_BACKOFF, restartAllowed } from '@mcl/backend-kvm/lifecycle';
import { wiredPorts } from './render';

/** The per-guest token a guest's agent requires as the first line of every connection to its ports. */
export function guestToken(key: Buffer, vm: string): string {
  return createHmac('sha256', key).update(`mcl-guest-token\n${vm}`).digest('hex');
}

/** The first line of every connection the broker makes to a guest's port. */
export function authLine(key: Buffer, vm: string): string {
  return `auth ${guestToken(key, vm)}\n`;
}

export interface GuestControlOptions {
  key: Buffer;
  host: string;
  port: number;
  connectTimeoutMs: number;
  /** First redial delay in ms (doubles up to 2 s). */
  reconnectDelayMs: number;
  /** Bound of the handshake and of the identity's answer. Default 60 s (a guest under emulation is slow). */
  answerTimeoutMs?: number;
  log: (entry: BrokerLogEntry) => void;
  /** Every program start and exit, for tests and status. */
  onEvent?: (e: GuestControlEvent) => void;
}

export type GuestControlEvent =
  | { type: 'started'; vm: string; pid: number | null; attempt: number }
  | { type: 'attached'; vm: string }
  | { type: 'exit'; vm: string; status: number; restart: boolean }
  | { type: 'error'; vm: string; message: string };

/** Restart backoff of the KVM supervisor (spec/lifecycle.md): 250 ms doubling to 10 s; 30 s of running resets it. */
const { backoffMs: RESTART_FIRST_MS, maxBackoffMs: RESTART_MAX_MS, stableAfterMs: RESTART_RESET_MS } = RESTART_BACKOFF;

/** The control connection of one clone: dialled, redialled, and driven for as long as the broker runs. */
export class GuestControl {
  private ctl: ControlChannel | null = null;
  private sock: Socket | null = null;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private delay: number;
  private restarts = 0;
  private restartDelay = RESTART_FIRST_MS;
  private startedAt = 0;
  /** Whether the guest's closing of the control connection before the handshake was logged already. */
  private refusedSaid = false;

  constructor(
    private readonly inst: PlanInstance,
    private readonly clone: number,
    readonly vm: string,
    private readonly o: GuestControlOptions,
  ) {
    this.delay = o.reconnectDelayMs;
  }

  start(): void {
    this.dial();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.ctl?.close();
    this.sock?.destroy();
  }

  private later(fn: () => void, ms: number): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      fn();
    }, ms);
    this.timer.unref?.();
  }

  private redial(): void {
    const d = this.delay;
    this.delay = Math.min(2000, d * 2);
    this.later(() => this.dial(), d);
  }

  private dial(): void {
    if (this.closed) return;
    const sock = connect({ host: this.o.host, port: this.o.port });
    this.sock = sock;
    let opened = false;
    const dialTimer = setTimeout(() => sock.destroy(new Error('connect timed out')), this.o.connectTimeoutMs);
    dialTimer.unref?.();
    sock.on('error', () => {
      // Reported through close.
    });
    sock.once('close', () => {
      clearTimeout(dialTimer);
      if (this.sock === sock) this.sock = null;
      if (!opened) this.redial();
    });
    sock.once('connect', () => {
      opened = true;
      clearTimeout(dialTimer);
      if (this.closed) return void sock.destroy();
      this.delay = this.o.reconnectDelayMs;
      sock.write(authLine(this.o.key, this.vm));
      const ctl = ControlChannel.over(sock);
      this.ctl = ctl;
      ctl.on('exit', (e: ProgramExit) => this.exited(ctl, e));
      ctl.once('close', () => {
        if (this.ctl === ctl) this.ctl = null;
        this.redial();
      });
      this.drive(ctl).catch((e: Error) => {
        if (this.closed) return;
        if (ctl.closed) {
          // Closed before it answered: the agent restarting, or refusing this broker's token. Said once per streak.
          if (!this.refusedSaid) {
            this.refusedSaid = true;
            this.o.log({ level: 'warn', message: `guest ${this.vm}: the control connection closed before the guest answered (its agent restarting, or it does not accept this broker's token: it learnt another key's); dialling again`, instance: this.inst.id, clone: this.clone });
          }
          return;
        }
        this.event({ type: 'error', vm: this.vm, message: e.message });
        this.o.log({ level: 'warn', message: `guest ${this.vm}: ${e.message}`, instance: this.inst.id, clone: this.clone });
        ctl.close();
      });
    });
  }

  private async drive(ctl: ControlChannel): Promise<void> {
    const timeout = this.o.answerTimeoutMs ?? 60_000;
    await ctl.handshake(timeout);
    this.refusedSaid = false;
    const q = `q${Date.now().toString(36)}`;
    const answer = ctl.waitFor((w) => w[0] === 'identity' && w[1] === q, timeout, 'query');
    ctl.send(`query ${q}`);
    const has = (await answer)[2] === 'yes';
    if (has) {
      this.event({ type: 'attached', vm: this.vm });
      this.o.log({ level: 'info', message: `guest ${this.vm}: control port connected; its program was started before`, instance: this.inst.id, clone: this.clone });
      return;
    }
    await this.identify(ctl);
  }

  private async identify(ctl: ControlChannel): Promise<void> {
    const { programPid } = await ctl.sendIdentity(
      { instanceId: this.inst.id, clone: this.clone, hostname: this.vm, ports: wiredPorts(this.inst).map((p) => ({ name: p.name, slot: p.slot })), program: programFor(this.inst, this.clone) },
      this.o.answerTimeoutMs ?? 60_000,
    );
    this.startedAt = Date.now();
    this.event({ type: 'started', vm: this.vm, pid: programPid, attempt: this.restarts });
    this.o.log({ level: 'info', message: `guest ${this.vm}: program started (guest pid ${programPid ?? '-'})`, instance: this.inst.id, clone: this.clone });
  }

  /** The program ended: started again in the same machine when the restart policy says so. */
  private exited(ctl: ControlChannel, e: ProgramExit): void {
    if (Date.now() - this.startedAt >= RESTART_RESET_MS) this.restartDelay = RESTART_FIRST_MS;
    // The KVM supervisor's rule, so that a policy means the same on both targets.
    const restart = restartAllowed(this.inst.restart, e.status !== 0, this.restarts);
    this.event({ type: 'exit', vm: this.vm, status: e.status, restart });
    this.o.log({
      level: e.status === 0 ? 'info' : 'warn',
      message: `guest ${this.vm}: program exited with status ${e.status}${restart ? `; starting it again in ${this.restartDelay} ms` : ''}`,
      instance: this.inst.id,
      clone: this.clone,
    });
    if (!restart) return;
    this.restarts++;
    const d = this.restartDelay;
    this.restartDelay = Math.min(RESTART_MAX_MS, d * 2);
    this.later(() => {
      if (this.ctl !== ctl || ctl.closed) return;
      this.identify(ctl).catch((err: Error) => {
        this.event({ type: 'error', vm: this.vm, message: err.message });
        ctl.close();
      });
    }, d);
  }

  private event(e: GuestControlEvent): void {
    this.o.onEvent?.(e);
  }
}
