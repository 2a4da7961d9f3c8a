// Simulated hosts for the tests of deployments over SSH: each host is a
// network namespace this harness creates, with its own address on a bridge it
// creates, its own `sshd` (Debian's openssh-server) on a host key made for the
// test, and its own state and run directories. The client side (what a CI
// runner would be) is a namespace of its own holding the bridge, so no address,
// route or listening socket is added to the machine's own network: every
// packet stays inside the namespaces made here. `teardown` kills what was
// started in them (by pid, only processes inside our namespaces) and removes
// them.
//
// The simulated hosts share the file system, so they share one template cache
// (MCL_CACHE_DIR) where real hosts would each build their own from the same
// content hash: that keeps the tests inside CI's time budget.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const SSHD = '/usr/sbin/sshd';

/** Why simulated hosts cannot be made on this machine, or null when they can. */
export function hostsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'simulated hosts need root (network namespaces and sshd): run the tests as root, as CI does';
  if (!existsSync(SSHD)) return `${SSHD} is missing: install openssh-server (bash scripts/setup.sh does)`;
  for (const tool of ['ip', 'ssh', 'ssh-keygen']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `\`${tool}\` is missing: install iproute2 and openssh-client (bash scripts/setup.sh does)`;
  }
  const probe = `mclp${process.pid}`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.status !== 0) return `this machine cannot create network namespaces: ${r.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return null;
}

export interface SimHost {
  name: string;
  /** The network namespace the host is. */
  netns: string;
  address: string;
  /** The host's own directory: its workspace root parent, `mclc` wrapper, sshd files. */
  dir: string;
  /** Where deployments live on this host (absolute; give it as the path of the `ssh://` address). */
  workspace: string;
  sshd: ChildProcess;
}

export interface SimHosts {
  dir: string;
  hosts: SimHost[];
  /** The client's ssh config (host names, user, key, known_hosts), for `MCL_SSH`. */
  sshConfig: string;
  /** `MCL_SSH`: how mclc runs ssh on the client side (in the client namespace, with the test's config). */
  sshCommand: string;
  knownHosts: string;
  clientKey: string;
  /** The `mclc` every host runs (a wrapper running this checkout's build with the test's environment), for `MCL_REMOTE_MCLC`. */
  mclc: string;
  /** Runs a command in the client namespace. */
  client(cmd: string[]): { status: number | null; stdout: string; stderr: string };
  /** Cuts a host off the bridge (`up` false) or puts it back. */
  link(host: SimHost, up: boolean): void;
  teardown(): void;
}

function sh(cmd: string[], check = true): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8' });
  if (check && r.status !== 0) throw new Error(`${cmd.join(' ')} failed: ${r.stderr || r.stdout}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Creates `names.length` hosts. `env` is added to every host's `mclc`
 * environment (e.g. MCL_CACHE_DIR, shared by all of them).
 */
export async function createHosts(names: string[], env: Record<string, string> = {}): Promise<SimHosts> {
  const tag = `${process.pid % 100000}`;
  const dir = mkdtempSync(join(tmpdir(), 'mcl-hosts-'));
  chmodSync(dir, 0o755);
  const clientNs = `mclc${tag}`;
  const bridge = 'mclbr0';
  const made: string[] = [];
  const started: ChildProcess[] = [];
  const hosts: SimHost[] = [];
  // 10.250.X.0/24 exists only inside these namespaces; X varies so that two runs never meet even if one leaked.
  const net = `10.250.${process.pid % 250}`;
  const teardown = () => {
    for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    for (const ns of made) {
      // Whatever a test started inside our namespaces (sshd sessions, supervisors, QEMU) is ours to end.
      const pids = sh(['ip', 'netns', 'pids', ns], false).stdout.split('\n').filter(Boolean).map(Number);
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      sh(['ip', 'netns', 'del', ns], false);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    sh(['ip', 'netns', 'add', clientNs]);
    made.push(clientNs);
    const inClient = (...cmd: string[]) => sh(['ip', 'netns', 'exec', clientNs, ...cmd]);
    inClient('ip', 'link', 'set', 'lo', 'up');
    inClient('ip', 'link', 'add', bridge, 'type', 'bridge');
    inClient('ip', 'addr', 'add', `${net}.1/24`, 'dev', bridge);
    inClient('ip', 'link', 'set', bridge, 'up');

    const clientKey = join(dir, 'client_ed25519');
    sh(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'mcl-test-client', '-f', clientKey]);
    const authorized = join(dir, 'authorized_keys');
    writeFileSync(authorized, readFileSync(`${clientKey}.pub`), { mode: 0o600 });
    // sshd refuses to start without its privilege separation directory (the Debian service makes it at start).
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

    const knownHosts = join(dir, 'known_hosts');
    // The hosts' mclc: this checkout's build, with the environment the test gives (sshd gives sessions a minimal one).
    // The hosts share the file system, so one wrapper serves them all (MCL_REMOTE_MCLC names it).
    const mclc = join(dir, 'mclc');
    const exports = Object.entries({ PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...env })
      .map(([k, v]) => `export ${k}='${v.replace(/'/g, `'\\''`)}'`)
      .join('\n');
    writeFileSync(mclc, `#!/bin/sh\n${exports}\nexec '${process.execPath}' '${join(REPO, 'cli', 'dist', 'mclc.mjs')}' "$@"\n`, { mode: 0o755 });
    const config: string[] = [];
    let i = 0;
    for (const name of names) {
      i++;
      const ns = `mclh${tag}${name}`.slice(0, 15);
      sh(['ip', 'netns', 'add', ns]);
      made.push(ns);
      const address = `${net}.${10 + i}`;
      const hostIf = `h${i}`;
      const peer = `p${tag}${i}`.slice(0, 15);
      // The veth pair is made inside the client namespace, then one end moves into the host.
      inClient('ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peer);
      inClient('ip', 'link', 'set', peer, 'master', bridge);
      inClient('ip', 'link', 'set', peer, 'up');
      inClient('ip', 'link', 'set', hostIf, 'netns', ns);
      const inHost = (...cmd: string[]) => sh(['ip', 'netns', 'exec', ns, ...cmd]);
      inHost('ip', 'link', 'set', 'lo', 'up');
      inHost('ip', 'link', 'set', hostIf, 'name', 'eth0');
      inHost('ip', 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      inHost('ip', 'link', 'set', 'eth0', 'up');

      const hdir = join(dir, name);
      mkdirSync(join(hdir, 'deployments'), { recursive: true });
      const hostKey = join(hdir, 'ssh_host_ed25519_key');
      sh(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', hostKey]);
      const pub = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
      writeFileSync(knownHosts, `${name},${address} ${pub}\n`, { flag: 'a' });


      const sshdConfig = join(hdir, 'sshd_config');
      writeFileSync(
        sshdConfig,
        [
          `ListenAddress ${address}:22`,
          `HostKey ${hostKey}`,
          `PidFile ${join(hdir, 'sshd.pid')}`,
          `AuthorizedKeysFile ${authorized}`,
          'PermitRootLogin prohibit-password',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'UsePAM no',
          'StrictModes no',
          'PrintMotd no',
          // Like a host that notices a client gone: its session (and the command's pipes) end within seconds.
          'ClientAliveInterval 1',
          'ClientAliveCountMax 3',
          'Subsystem sftp internal-sftp',
          '',
        ].join('\n'),
      );
      const sshd = spawn('ip', ['netns', 'exec', ns, SSHD, '-D', '-e', '-f', sshdConfig], { stdio: ['ignore', 'ignore', 'pipe'] });
      started.push(sshd);
      let log = '';
      sshd.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
      writeFileSync(join(hdir, 'sshd.log'), '');
      hosts.push({ name, netns: ns, address, dir: hdir, workspace: join(hdir, 'deployments'), sshd });
      config.push(`Host ${name}`, `  HostName ${address}`, '');
      // Wait until it listens.
      const deadline = Date.now() + 10_000;
      while (!sh(['ip', 'netns', 'exec', ns, 'ss', '-ltnH', `sport = :22`], false).stdout.includes(':22')) {
        if (sshd.exitCode !== null || Date.now() > deadline) throw new Error(`sshd of ${name} did not start: ${log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const sshConfig = join(dir, 'ssh_config');
    writeFileSync(
      sshConfig,
      [
        ...config,
        'Host *',
        '  User root',
        `  IdentityFile ${clientKey}`,
        '  IdentitiesOnly yes',
        `  UserKnownHostsFile ${knownHosts}`,
        '  GlobalKnownHostsFile /dev/null',
        '  StrictHostKeyChecking yes',
        '  ConnectTimeout 5',
        '  ServerAliveInterval 1',
        '  ServerAliveCountMax 3',
        '',
      ].join('\n'),
    );
    return {
      dir,
      hosts,
      sshConfig,
      sshCommand: `ip netns exec ${clientNs} ssh -F ${sshConfig}`,
      knownHosts,
      clientKey,
      mclc,
      client: (cmd) => sh(['ip', 'netns', 'exec', clientNs, ...cmd], false),
      link: (host, up) => void sh(['ip', 'netns', 'exec', host.netns, 'ip', 'link', 'set', 'eth0', up ? 'up' : 'down']),
      teardown,
    };
  } catch (e) {
    teardown();
    throw e;
  }
}
