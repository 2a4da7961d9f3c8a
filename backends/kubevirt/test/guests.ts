// Real guest agents on the host for the kube broker's tests: each "guest" is
// the guest image's agent (backends/kvm/guest/agent.sh) serving its control
// port and its ports over the TCP transport under busybox, with its kernel
// command line, run and port directories in a temporary directory and its
// ports on a loopback port base of its own. Programs run as the agent starts
// them, with mcl-msg on their PATH reading the FIFO pairs the agent makes.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const AGENT = join(__dirname, '..', '..', 'kvm', 'guest', 'agent.sh');
export const GUEST_TOOLS = join(__dirname, '..', '..', 'broker', 'guest');
export const haveBusybox = spawnSync('busybox', ['nc', '--help'], { encoding: 'utf8' }).error === undefined;
const BUSYBOX = spawnSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).stdout.trim();

export interface Guest {
  vm: string;
  /** Where the guest's slot 0 listens; slot N is base + N. */
  base: number;
  dir: string;
  stop(): void;
}

/** Starts the agent of one guest (`serve`), which listens on the control port at once and on each port named by its identity. */
export function startGuest(vm: string, slots: number[]): Guest {
  const dir = mkdtempSync(join(tmpdir(), `mcl-guest-${vm}-`));
  const base = 30000 + Math.floor(Math.random() * 20000);
  mkdirSync(join(dir, 'ports'));
  mkdirSync(join(dir, 'run'));
  mkdirSync(join(dir, 'bin'));
  // mcl-msg as a program finds it: on PATH (to run or to source), run by busybox's shell as in the guest.
  const msg = readFileSync(join(GUEST_TOOLS, 'mcl-msg'), 'utf8').replace(/^#!.*\n/, `#!${BUSYBOX} sh\n`);
  writeFileSync(join(dir, 'bin', 'mcl-msg'), msg, { mode: 0o755 });
  writeFileSync(join(dir, 'cmdline'), `console=ttyS0 quiet mcl.transport=tcp mcl.port_base=${base} mcl.slots=${slots.join(',')}\n`);
  const script = [
    `export MCL_CMDLINE=${dir}/cmdline MCL_PORTS=${dir}/ports MCL_DEV_DIR=${dir}/ports MCL_RUN=${dir}/run MCL_AGENT=${AGENT} MCL_SH='busybox sh' OUT=${dir}`,
    `. ${AGENT} functions`,
    // The agent's PATH, with mcl-msg's directory first; the host's name and console are not the guest's.
    `PATH=${dir}/bin:$PATH`,
    'hostname() { echo "$1" >"$MCL_RUN/hostname"; }',
    'log() { echo "$*" >>"$MCL_RUN/log"; }',
    'serve',
  ].join('\n');
  const child: ChildProcess = spawn('busybox', ['sh', '-c', script], { detached: true, stdio: 'ignore' });
  return {
    vm,
    base,
    dir,
    stop() {
      // The agent, its bridges and its program run in a process group of their own, which only this test made.
      if (child.pid) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
