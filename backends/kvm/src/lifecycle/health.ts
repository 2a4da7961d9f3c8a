// Health of each clone from outside its guest, so that it keeps working when
// the program or the guest inside has failed: QEMU's run state over QMP
// (`query-status`), a ping of the guest agent on the control port, whether
// the QEMU process is still there, and the last lines of the console.
//
// The supervisor probes every clone every 5 s (MCL_HEALTH_INTERVAL_MS), each
// question bounded by 2 s, and `status` shows the verdict with what it rests
// on. A clone that is down is judged by how it ended: the agent's report of
// the program's status means the guest was alive (`program_exited`); an end
// without one means QEMU went (`qemu_gone`).

import { readFileSync } from 'node:fs';
import { readFileRange } from '@mcl/plan/state-store';
import type { CloneHandle, GuestProbe } from './guest-runtime';
import type { CloneHealth, CloneState, InstanceStatus } from './events';

export const HEALTH_INTERVAL_ENV = 'MCL_HEALTH_INTERVAL_MS';
const PROBE_TIMEOUT_MS = 2_000;
const CONSOLE_TAIL_LINES = 10;

interface Probed {
  probe: GuestProbe;
  /** Whether the QEMU process was there at the probe. */
  alive: boolean;
  at: number;
  agentSeenAt: number | null;
  pid: number;
}

/** Whether a process exists and is not a zombie. */
export function processRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

/** The last `n` lines of a file, from at most its last 8 KiB (a console is the guest's to fill). */
export function tailLines(path: string, n = CONSOLE_TAIL_LINES): string[] {
  const r = readFileRange(path, 'end', 8192);
  if (!r) return [];
  // Control characters from the guest are dropped; each line is bounded.
  const lines = r.text.replace(/\r/g, '').split('\n').map((l) => l.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '').slice(0, 300));
  if (lines[lines.length - 1] === '') lines.pop();
  // The first line may be cut by the 8 KiB window.
  if (r.start > 0) lines.shift();
  return lines.slice(-n);
}

/**
 * The verdict for a clone with a QEMU process, from the last probe. Pure:
 * `now` and the probe are given.
 */
export function judge(state: CloneState, p: Probed | undefined, now: number): Omit<CloneHealth, 'console_tail'> {
  if (!p) return { verdict: state === 'paused' ? 'paused' : 'unknown', detail: state === 'paused' ? 'warm clone, paused' : 'not probed yet' };
  const base = {
    vcpu: p.probe.vcpu,
    agent_ms: p.probe.agent_ms,
    checked_at: new Date(p.at).toISOString(),
    ...(p.agentSeenAt !== null ? { agent_seen_at: new Date(p.agentSeenAt).toISOString() } : {}),
  };
  const since = p.agentSeenAt !== null ? `for ${Math.round((now - p.agentSeenAt) / 1000)} s` : 'since the supervisor began probing it';
  if (!p.alive) return { ...base, verdict: 'qemu_gone', detail: `the QEMU process (pid ${p.pid}) is gone` };
  if (p.probe.vcpu === null) return { ...base, verdict: 'qemu_hung', detail: `QEMU (pid ${p.pid}) does not answer QMP` };
  if (p.probe.vcpu === 'guest-panicked' || p.probe.vcpu === 'internal-error' || p.probe.vcpu === 'shutdown' || p.probe.vcpu === 'io-error') {
    return { ...base, verdict: 'guest_crashed', detail: `QEMU reports the guest ${p.probe.vcpu === 'guest-panicked' ? 'panicked' : `stopped: ${p.probe.vcpu}`}` };
  }
  if (p.probe.vcpu === 'paused' || p.probe.vcpu === 'prelaunch' || p.probe.vcpu === 'inmigrate') {
    return { ...base, verdict: 'paused', detail: state === 'paused' ? 'warm clone, paused' : `the vCPUs are stopped (${p.probe.vcpu})` };
  }
  if (p.probe.agent_ms === null) return { ...base, verdict: 'guest_hung', detail: `the vCPUs run (${p.probe.vcpu}) but the guest agent has not answered ${since}` };
  return { ...base, verdict: 'ok', detail: `vCPUs ${p.probe.vcpu}, agent answered in ${p.probe.agent_ms} ms` };
}

/** The verdict for a clone that is down, from how it ended (`last_exit` as status shows it). */
export function judgeExit(lastExit: string | undefined): Omit<CloneHealth, 'console_tail'> | null {
  if (!lastExit) return null;
  if (/^program exited with status/.test(lastExit)) {
    return { verdict: 'program_exited', detail: `${lastExit}: the program ended and the guest was alive to report it` };
  }
  return { verdict: 'qemu_gone', detail: `QEMU ended with no report from the guest (${lastExit})` };
}

export interface HealthSource {
  liveClones(): { instance: string; clone: number; state: CloneState; handle: CloneHandle; console: string }[];
}

export class HealthMonitor {
  private readonly probed = new Map<string, Probed>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Console files of the clones seen, to show a down clone's last lines too. */
  private readonly consoles = new Map<string, string>();

  constructor(
    private readonly source: HealthSource,
    private readonly now: () => number = Date.now,
    /** What the host knows of why a clone that is down ended (e.g. the kernel's OOM killer in its cgroup), or null. */
    private readonly exitNote: (instance: string, clone: number) => string | null = () => null,
  ) {}

  start(intervalMs = Number(process.env[HEALTH_INTERVAL_ENV]) || 5_000): void {
    this.timer = setInterval(() => void this.probeAll(), Math.max(100, intervalMs));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Probes every clone with a QEMU process once (one round at a time). */
  async probeAll(timeoutMs = PROBE_TIMEOUT_MS): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const clones = this.source.liveClones();
      const keep = new Set<string>();
      await Promise.all(
        clones.map(async (c) => {
          const key = `${c.instance}#${c.clone}`;
          keep.add(key);
          this.consoles.set(key, c.console);
          if (!c.handle.probe) return;
          const probe = await c.handle.probe(timeoutMs).catch(() => ({ vcpu: null, agent_ms: null }));
          const before = this.probed.get(key);
          const at = this.now();
          const sameProcess = before?.pid === c.handle.pid;
          this.probed.set(key, {
            probe,
            alive: processRunning(c.handle.pid),
            at,
            pid: c.handle.pid,
            agentSeenAt: probe.agent_ms !== null ? at : sameProcess ? (before?.agentSeenAt ?? null) : null,
          });
        }),
      );
      for (const k of this.probed.keys()) if (!keep.has(k)) this.probed.delete(k);
    } finally {
      this.running = false;
    }
  }

  /** The instances of a status report with each clone's health. */
  annotate(instances: InstanceStatus[]): InstanceStatus[] {
    const now = this.now();
    return instances.map((i) => ({
      ...i,
      clones: i.clones.map((c) => {
        // A clone moved to another host is not probed from here (its QEMU is that host's); an earlier exit says nothing of it.
        if (c.moved_to) return c;
        const key = `${i.id}#${c.index}`;
        const p = this.probed.get(key);
        let h = c.pid !== undefined ? judge(c.state, p && p.pid === c.pid ? p : undefined, now) : judgeExit(c.last_exit);
        if (!h) return c;
        const note = c.pid === undefined ? this.exitNote(i.id, c.index) : null;
        if (note) h = { ...h, detail: `${h.detail}: ${note}` };
        const consoleFile = this.consoles.get(key);
        const tail = h.verdict !== 'ok' && h.verdict !== 'paused' && h.verdict !== 'unknown' && consoleFile ? tailLines(consoleFile) : [];
        return { ...c, health: { ...h, ...(tail.length ? { console_tail: tail } : {}) } };
      }),
    }));
  }
}
