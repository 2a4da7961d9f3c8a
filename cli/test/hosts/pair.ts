// The system of fixtures/cross (a requester calling a store over a channel)
// placed over two simulated hosts (netns.ts), with what the real-QEMU tests of
// several hosts share: running the client's mclc against them, their status and
// logs, the files of a host's run directory, the processes left in a host's
// namespace, waiting for a condition.
//
// The simulated hosts share this machine's template cache (MCL_CACHE_DIR),
// where real hosts would each build their own from the same content hash.

import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runDirCandidates } from '../../../backends/kvm/src/lifecycle/rundir';
import { createHosts, type SimHost, type SimHosts } from './netns';

const REPO = join(__dirname, '..', '..', '..');
const MCLC = join(REPO, 'cli', 'dist', 'mclc.mjs');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Pair {
  sim: SimHosts;
  h1: SimHost;
  h2: SimHost;
  /** The client's directory (the CI runner): the sources are in `src`, plans are written here. */
  runner: string;
  /** Runs the client's mclc in the runner directory; its ssh reaches the hosts through their namespaces. */
  mclc(args: string[]): Promise<Run>;
  /** The host's target address, by IP: the link of the host that dials goes to the same address ssh reaches. */
  url(h: SimHost): string;
  /** `mclc status --host ... --json` of the host. */
  status(h: SimHost): Promise<StatusJson>;
  /** A file of the host's run directory, or null (the hosts share the file system; the host's mclc runs without XDG_RUNTIME_DIR). */
  runFile(h: SimHost, name: string): string | null;
  /** Processes in the host's namespace other than its sshd: the supervisor, QEMU, zygotes. */
  hostProcesses(h: SimHost): string[];
  /** Destroys the deployment on both hosts and removes the namespaces. */
  teardown(): Promise<void>;
}

// The parts of a status report the tests read.
export interface StatusJson {
  deployed: boolean;
  instances: { id: string; clones: { index: number; state: string; pid?: number; moved_to?: { target: string; at: string } }[] }[];
  channels: { id: string; violations: number; frames_forward: number }[];
  links?: { peer: string; state: string; address: string; channels: string[]; bytes_out: number; bytes_in: number }[];
  kept?: { instance: string; clone: number; from: string; pid: number; state: string }[];
}

/** Polls `f` every second until it gives a value, for at most `ms`. */
export async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 180_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/**
 * Two hosts `node1` and `node2` and a runner with fixtures/cross's sources, the targets written
 * for the hosts' addresses, `asker` placed on node1 and `store` on node2. `guest` replaces
 * guest programs of the fixture (file name to text).
 */
export async function createPair(guest: Record<string, string> = {}, node2Settings = ''): Promise<Pair> {
  const sim = await createHosts(['node1', 'node2'], process.env.MCL_CACHE_DIR ? { MCL_CACHE_DIR: process.env.MCL_CACHE_DIR } : {});
  const [h1, h2] = sim.hosts;
  const runner = join(sim.dir, 'runner');
  const src = join(runner, 'src');
  mkdirSync(src, { recursive: true });
  const fixture = join(__dirname, '..', 'fixtures', 'cross');
  cpSync(fixture, src, { recursive: true });
  for (const [name, text] of Object.entries(guest)) writeFileSync(join(src, 'guest', name), text, { mode: 0o755 });
  const url = (h: SimHost) => `ssh://${h.address}${h.workspace}`;
  writeFileSync(
    join(src, 'main.mcl'),
    readFileSync(join(fixture, 'main.mcl'), 'utf8') +
      `\ntarget node1 { backend kvm  memory 2GiB  vcpus 2  overcommit 4  host "${url(h1)}" }\n` +
      `target node2 { backend kvm  memory 2GiB  vcpus 2  overcommit 4  host "${url(h2)}"${node2Settings ? `  ${node2Settings}` : ''} }\n` +
      `deploy Pair to [node1, node2] {\n  place asker on node1\n  place store on node2\n}\n`,
  );
  const mclc = (args: string[]): Promise<Run> =>
    new Promise((res) => {
      const p = spawn(process.execPath, [MCLC, ...args], {
        cwd: runner,
        env: { ...process.env, NO_COLOR: '1', MCL_IN_AUTOMATION: '1', MCL_SSH: sim.sshCommand, MCL_REMOTE_MCLC: sim.mclc },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      p.on('close', (code) => res({ code, stdout, stderr }));
    });
  return {
    sim,
    h1,
    h2,
    runner,
    mclc,
    url,
    status: async (h) => JSON.parse((await mclc(['status', '--host', url(h), '--json'])).stdout) as StatusJson,
    runFile(h, name) {
      for (const dir of runDirCandidates(join(h.workspace, '.mcl', 'state.json'), { PATH: process.env.PATH })) {
        if (existsSync(join(dir, name))) return join(dir, name);
      }
      return null;
    },
    hostProcesses: (h) =>
      spawnSync('ip', ['netns', 'pids', h.netns], { encoding: 'utf8' })
        .stdout.split('\n')
        .filter(Boolean)
        .filter((pid) => {
          try {
            return !readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('sshd');
          } catch {
            return false;
          }
        }),
    async teardown() {
      for (const h of sim.hosts) await mclc(['destroy', '--host', url(h)]).catch(() => undefined);
      sim.teardown();
    },
  };
}
