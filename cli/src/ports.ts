// The host-side check of `mclc plan`: can the broker listen on every
// exposure's TCP port? A clash is otherwise found only at apply time. This is
// IO on the planning host, so it lives in the CLI, never in the language or
// the compiler (which do no IO). Ports can be freed or taken between plan and
// apply, so the result is a warning here; apply fails if the port is still
// taken then.

import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { DEFAULT_EXPOSURE_HOST, tryBind } from '@mcl/broker/ports';
import type { DeploymentState, Plan } from '@mcl/plan';

/** The address the broker binds exposures on: its default `exposureHost`, which the KVM backend's supervisor keeps. */
export const EXPOSURE_HOST = DEFAULT_EXPOSURE_HOST;

/** A program found listening on a port (Linux, and only processes this user may inspect). */
export interface PortHolder {
  pid: number;
  command: string;
}

/** An exposure whose host port the broker could not bind now. */
export interface PortConflict {
  host_port: number;
  address: string;
  /** `instance.port`, as in the plan's exposures. */
  exposure: string;
  instance: string;
  port: string;
  /** The error of the trial bind: `EADDRINUSE`, `EACCES`, ... */
  error: string;
  holder: PortHolder | null;
  message: string;
  hint: string;
}

/**
 * Checks every exposure of `plan` by binding its host port on `host`. Ports
 * that `state` already exposes are this deployment's own broker's (it gives
 * them up when apply replaces it), so they are not checked.
 */
export async function checkExposurePorts(plan: Plan, state: DeploymentState | null | undefined, host: string = EXPOSURE_HOST): Promise<PortConflict[]> {
  const ours = new Set((state?.exposures ?? []).map((e) => e.host_port));
  const checked = plan.exposures.filter((e) => !ours.has(e.host_port));
  const errors = await Promise.all(checked.map((e) => tryBind(host, e.host_port)));
  const out: PortConflict[] = [];
  checked.forEach((e, i) => {
    const error = errors[i];
    if (error === null) return;
    const exposure = `${e.instance}.${e.port}`;
    const holder = error === 'EADDRINUSE' ? findListener(e.host_port) : null;
    const where = `${host}:${e.host_port}`;
    const source = `choose another port for ${exposure} in the source (the \`on tcp ${e.host_port}\` of its \`expose\`)`;
    let message: string;
    let hint: string;
    if (error === 'EADDRINUSE') {
      message = `tcp ${e.host_port} of exposure ${exposure} is in use on ${host} by ${holder ? `${holder.command} (pid ${holder.pid})` : 'another program'}; apply will fail to listen on it`;
      hint = `Stop the program listening on ${where}, or ${source}; then plan again.`;
    } else if (error === 'EACCES') {
      message = `tcp ${e.host_port} of exposure ${exposure} cannot be bound on ${host} by this user (ports below 1024 need privileges); apply will fail to listen on it`;
      hint = `Choose a port of 1024 or above for ${exposure} in the source (the \`on tcp ${e.host_port}\` of its \`expose\`).`;
    } else {
      message = `tcp ${e.host_port} of exposure ${exposure} cannot be bound on ${host} (${error}); apply will fail to listen on it`;
      hint = `${source[0].toUpperCase()}${source.slice(1)}.`;
    }
    out.push({ host_port: e.host_port, address: host, exposure, instance: e.instance, port: e.port, error, holder, message, hint });
  });
  return out;
}

/**
 * The process listening on TCP `port`, from /proc/net/tcp{,6} and the fd
 * links of the processes this user may read; null when it cannot be found
 * (another user's process, or no /proc). Only called for a port in use.
 */
export function findListener(port: number): PortHolder | null {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // f[1] is the local address `HEXADDR:HEXPORT`, f[3] the state (0A: listen), f[9] the socket inode.
      if (f.length < 10 || f[3] !== '0A') continue;
      if (parseInt(f[1].slice(f[1].lastIndexOf(':') + 1), 16) === port && f[9] !== '0') inodes.add(f[9]);
    }
  }
  if (!inodes.size) return null;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return null;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m && inodes.has(m[1])) {
        let command = '?';
        try {
          command = readFileSync(`/proc/${pid}/comm`, 'utf8').trim() || '?';
        } catch {
          // The process ended meanwhile; the pid still says who it was.
        }
        return { pid: Number(pid), command };
      }
    }
  }
  return null;
}
