// Lifecycle commands on another host, over the system's OpenSSH client.
//
// A target with `host "ssh://..."` runs its deployment there: the supervisor,
// the broker, the state and its lock live on the host, which runs `mclc`
// itself. This side runs one `ssh HOST -- mclc __host ...` per command, sends a
// plan on its standard input, and reads back the JSON lines the host's mclc
// prints with `--json` (the same events, results and errors as on one host),
// then renders them as the local commands do. Nothing is kept here, so a CI
// runner can be thrown away after the job, and two runners applying at once
// are serialised by the host's state lock.
//
// ssh is run as the user would run it: their ~/.ssh/config, agent and
// known_hosts apply, and host keys are checked as configured (never turned
// off here). `MCL_SSH` replaces the `ssh` command (like GIT_SSH_COMMAND), and
// `MCL_REMOTE_MCLC` names the host's mclc when it is not `mclc` on its PATH.

import { spawn } from 'node:child_process';
import { LineSplitter } from '@mcl/broker/lines';
import { hostLabel, parseHostAddress, type HostAddress } from '@mcl/plan/host';
import type { Context } from './context';
import { CliError, ExitCode, type ExitCodeValue } from './exit';
import { MCLC_VERSION } from './version';

/** The version of the exchange between this side and `mclc __host` (the first line the host prints says its own). */
export const HOST_PROTOCOL = 1;

/** A line longer than this from the host is refused: the host is not trusted to bound its output. */
const MAX_LINE_BYTES = 16 * 1024 * 1024;
/** The host's standard error kept for messages. */
const MAX_STDERR_BYTES = 64 * 1024;

export interface RemoteHost {
  url: string;
  address: HostAddress;
  /** `user@host:port`, for messages. */
  label: string;
}

/** The host of a target address, or a usage error saying what is wrong with it. */
export function remoteHost(url: string, what: string): RemoteHost {
  const parsed = parseHostAddress(url);
  if (!parsed.ok) throw new CliError(`${what} ${JSON.stringify(url)} is not a host address: ${parsed.reason}`, ExitCode.Invalid, 'Write it like ssh://mcl@node1.example:22.');
  return { url, address: parsed.address, label: hostLabel(parsed.address) };
}

/** Quotes a word for the host's POSIX shell, which runs the command ssh sends. */
function shq(word: string): string {
  return /^[A-Za-z0-9_./=:@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Two mclc versions work together when their major and minor are the same (while below 1.0, the minor is the major). */
export function compatibleVersions(a: string, b: string): boolean {
  const parts = (v: string) => /^(\d+)\.(\d+)\.\d+/.exec(v)?.slice(1, 3) ?? [];
  const [pa, pb] = [parts(a), parts(b)];
  return pa.length === 2 && pa[0] === pb[0] && pa[1] === pb[1];
}

export function installHint(host: RemoteHost): string {
  return (
    `Install mclc ${MCLC_VERSION} on ${host.address.host}: check out the same version of mcl there, run \`bash scripts/setup.sh\`, and put ` +
    '`cli/dist/mclc.mjs` on the PATH as `mclc` (or set MCL_REMOTE_MCLC to where it is).'
  );
}

export interface RemoteRun {
  /** The JSON lines the host printed, in order, after its greeting. */
  onLine(value: Record<string, unknown>): void;
  /** The plan (or anything else) to send on the host's standard input. */
  stdin?: string;
  signal?: AbortSignal;
  /** Names what was going on, for a lost connection ("apply", "status"). */
  doing: string;
}

/**
 * Runs `mclc __host ARGS` on the host and feeds its JSON lines to `onLine`.
 * Resolves with the host's exit code; a failure to reach the host, a refused
 * key, a host key that does not match, a missing or incompatible mclc there
 * and a connection lost half-way are CliErrors saying which and what to do.
 */
export async function runOnHost(ctx: Context, host: RemoteHost, args: string[], run: RemoteRun): Promise<ExitCodeValue> {
  const a = host.address;
  const mclc = ctx.env.MCL_REMOTE_MCLC || 'mclc';
  const remoteCommand = [mclc, '__host', '--client-version', MCLC_VERSION, '--root', a.workspace, ...args].map(shq).join(' ');
  const sshArgs = [
    // No terminal: the host's mclc writes JSON lines, and a prompt would hang automation.
    '-T',
    ...(ctx.automation ? ['-o', 'BatchMode=yes'] : []),
    ...(a.port ? ['-p', String(a.port)] : []),
    ...(a.user ? ['-l', a.user] : []),
    '--',
    a.host,
    remoteCommand,
  ];
  // MCL_SSH is a command line like GIT_SSH_COMMAND: the shell splits it, the arguments follow.
  const custom = ctx.env.MCL_SSH;
  const child = custom
    ? spawn('/bin/sh', ['-c', `${custom} "$@"`, 'mcl-ssh', ...sshArgs], { stdio: ['pipe', 'pipe', 'pipe'], env: ctx.env })
    : spawn('ssh', sshArgs, { stdio: ['pipe', 'pipe', 'pipe'], env: ctx.env });

  let greeted = false;
  let stderr = '';
  let protocolError: CliError | undefined;
  const onAbort = () => child.kill('SIGTERM');
  run.signal?.addEventListener('abort', onAbort);

  const handleLine = (raw: string) => {
    if (protocolError || !raw.trim()) return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      protocolError = new CliError(`${host.label} answered with something other than mclc's JSON lines: ${JSON.stringify(raw.slice(0, 120))}`, ExitCode.BackendFailure, installHint(host));
      return;
    }
    if (!value || typeof value !== 'object' || Array.isArray(value)) return;
    const v = value as Record<string, unknown>;
    if (!greeted) {
      greeted = true;
      if (v.type !== 'host' || typeof v.mclc !== 'string') {
        protocolError = new CliError(`${host.label} did not greet as an mclc host`, ExitCode.BackendFailure, installHint(host));
      }
      return;
    }
    run.onLine(v);
  };
  // The broker's bounded splitter: a host that sends an endless line is stopped at the cap, not buffered.
  const lines = new LineSplitter(MAX_LINE_BYTES, {
    line: (text) => handleLine(text),
    oversize: () => {
      protocolError ??= new CliError(`${host.label} sent a line of more than ${MAX_LINE_BYTES} bytes`, ExitCode.BackendFailure);
      child.kill('SIGTERM');
    },
  });
  child.stdout.on('data', (d: Buffer) => lines.push(d));
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < MAX_STDERR_BYTES) stderr += d.toString('utf8');
  });
  // The host may stop reading (it refused the command before reading the plan): that is reported from its answer.
  child.stdin.on('error', () => {});
  child.stdin.end(run.stdin ?? '');

  const { code, error } = await new Promise<{ code: number | null; error?: Error }>((res) => {
    child.on('error', (e) => res({ code: null, error: e }));
    child.on('close', (c) => res({ code: c }));
  });
  run.signal?.removeEventListener('abort', onAbort);
  if (lines.pending) handleLine(lines.partialBytes().toString('utf8'));
  if (error) {
    throw new CliError(`cannot run ssh to reach ${host.label}: ${error.message}`, ExitCode.BackendFailure, 'Install the OpenSSH client (`apt-get install openssh-client`) or set MCL_SSH to the ssh command to use.');
  }
  if (protocolError) throw protocolError;
  if (!greeted) throw connectionError(host, code, stderr);
  if (code === 255) {
    throw new CliError(
      `lost the connection to ${host.label} during ${run.doing}: ${lastLine(stderr) || 'ssh ended without a reason'}`,
      ExitCode.BackendFailure,
      `The host goes on with what it was given under its lock, finishing or rolling it back. See where it is with \`mclc status --host ${host.url}\`; ` +
        'running the same command again converges.',
    );
  }
  return (code ?? ExitCode.BackendFailure) as ExitCodeValue;
}

function lastLine(text: string): string {
  return text.trim().split('\n').filter((l) => l.trim() && !/^\*+|^@+/.test(l)).pop()?.trim().slice(0, 300) ?? '';
}

/** Why the host did not answer as an mclc host, from ssh's exit code and messages. */
export function connectionError(host: RemoteHost, code: number | null, stderr: string): CliError {
  const h = host.address.host;
  const said = lastLine(stderr);
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/i.test(stderr)) {
    return new CliError(
      `the host key of ${host.label} does not match the one known_hosts has for it: refusing to connect`,
      ExitCode.BackendFailure,
      `If the host was reinstalled, check its new key out of band, then \`ssh-keygen -R ${h}\` and connect once with ssh to record it; otherwise someone may be in between.`,
    );
  }
  if (/Host key verification failed|No [A-Z0-9-]+ host key is known/i.test(stderr)) {
    return new CliError(
      `the host key of ${host.label} is not known, and mclc does not accept unknown host keys`,
      ExitCode.BackendFailure,
      `Check the host's key fingerprint out of band and add it to known_hosts (e.g. connect once with \`ssh ${h}\`).`,
    );
  }
  if (/Permission denied \(/i.test(stderr)) {
    return new CliError(
      `${host.label} refused the key: ${said}`,
      ExitCode.BackendFailure,
      `Add your public key to ~/.ssh/authorized_keys of ${host.address.user ?? 'the login'} on the host, or name the key in ~/.ssh/config (IdentityFile) or your ssh agent.`,
    );
  }
  if (code === 255) {
    return new CliError(`cannot reach ${host.label}: ${said || 'ssh failed without a reason'}`, ExitCode.BackendFailure, 'Check the host name, port and network (`ssh -v` says more), and that sshd runs there.');
  }
  if (code === 127 || /command not found|not found|No such file/i.test(stderr)) {
    return new CliError(`${host.label} has no mclc: ${said}`, ExitCode.BackendFailure, installHint(host));
  }
  if (/unknown command|unknown option/i.test(stderr)) {
    return new CliError(`the mclc on ${host.label} is too old to serve as a host (it does not know \`__host\`)`, ExitCode.BackendFailure, installHint(host));
  }
  return new CliError(`${host.label} did not answer as an mclc host (exit ${code ?? 'signal'}): ${said}`, ExitCode.BackendFailure, installHint(host));
}

/** Throws the error a host reported in a `{"type":"error"}` line, with its exit code. */
export function hostError(host: RemoteHost, line: Record<string, unknown>, code: ExitCodeValue): CliError {
  const message = typeof line.message === 'string' ? line.message : 'the host reported an error';
  const hint = typeof line.hint === 'string' ? line.hint : undefined;
  return new CliError(`${host.label}: ${message}`, code === ExitCode.Ok ? ExitCode.BackendFailure : code, hint);
}
