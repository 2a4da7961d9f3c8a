// The host side of a deployment driven over SSH (cli/src/remote.ts is the
// other side): `mclc __host --client-version V --root DIR COMMAND [OPTIONS]`.
// It greets with one JSON line (its version and protocol), refuses a client
// of an incompatible version, then runs the lifecycle command on this host's
// deployment in DIR with `--json`, so the client reads the same events,
// results and errors a local `--json` run prints, one JSON value per line.
//
// apply and destroy outlive the connection: when the client goes away half-way
// (its network drops, it is killed), the command goes on to its end under the
// state lock, finishing or rolling back what it was given, and the next run
// converges. Everything read from the client (its options, the plan) is
// bounded and checked like any other input.

import { mkdirSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { LinkConfigInput } from '@mcl/plan/backend';
import type { Context } from '../context';
import { CliError, ExitCode, type ExitCodeValue } from '../exit';
import { defaultStatePath, readStateFile } from '../plan-file';
import { HOST_PROTOCOL, compatibleVersions } from '../remote';
import { MCLC_VERSION } from '../version';
import { applyCommand, destroyCommand, doctorCommand, logsCommand, statusCommand } from './lifecycle';

/** The largest plan a client may send (what `mclc apply` reads from a file, too). */
const MAX_PLAN_BYTES = 64 * 1024 * 1024;

export const HOST_COMMANDS = ['apply', 'destroy', 'status', 'logs', 'doctor', 'state', 'checkpoint', 'restore', 'usage', 'audit', 'audit-verify', 'link-identity', 'link-config', 'migrate-in', 'migrate-out'] as const;

/** The largest link configuration a client may send: a few certificates. */
const MAX_LINK_CONFIG_BYTES = 1024 * 1024;

function readStdin(limit: number, what = 'the plan sent'): string {
  const chunks: Buffer[] = [];
  let total = 0;
  const buf = Buffer.alloc(64 * 1024);
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      if ((e as NodeJS.ErrnoException).code === 'EOF') break;
      throw e;
    }
    if (n === 0) break;
    total += n;
    if (total > limit) throw new CliError(`${what} is larger than ${limit} bytes`, ExitCode.Invalid);
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The client's options for the command: a JSON object of strings, booleans and lists of strings only. */
function clientOptions(text: string | undefined): Record<string, string | boolean | string[]> {
  if (text === undefined) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new CliError('the options the client sent are not JSON', ExitCode.Invalid);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new CliError('the options the client sent are not an object', ExitCode.Invalid);
  const out: Record<string, string | boolean | string[]> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (!/^[a-zA-Z]{1,40}$/.test(k)) continue;
    if (typeof x === 'string' || typeof x === 'boolean') out[k] = x;
    else if (Array.isArray(x) && x.every((s) => typeof s === 'string')) out[k] = x as string[];
  }
  return out;
}

export async function hostCommand(ctx: Context, o: { clientVersion: string; root: string }, command: string, optionsJson: string | undefined): Promise<ExitCodeValue> {
  // A move outlives the connection too: the source goes on to a consistent end (moved, or running on where it was).
  const lasting = command === 'apply' || command === 'destroy' || command === 'checkpoint' || command === 'restore' || command === 'migrate-out';
  let gone = false;
  if (lasting) {
    // The client went away: keep going to a consistent end instead of dying with the connection.
    process.on('SIGHUP', () => {});
    process.on('SIGPIPE', () => {});
    process.stdout.removeAllListeners('error');
    process.stdout.on('error', () => void (gone = true));
  }
  const write = (text: string) => {
    if (!gone) ctx.out(text);
  };
  write(JSON.stringify({ type: 'host', mclc: MCLC_VERSION, protocol: HOST_PROTOCOL, host: hostname() }) + '\n');
  const fail = (message: string, hint: string, code: ExitCodeValue) => {
    write(JSON.stringify({ type: 'error', kind: 'host', message, hint }) + '\n');
    return code;
  };
  if (!compatibleVersions(o.clientVersion, MCLC_VERSION)) {
    return fail(
      `this host runs mclc ${MCLC_VERSION}, which does not work with mclc ${o.clientVersion} on the client`,
      `Install mclc ${o.clientVersion} on the host (the same major and minor version as the client), or run the client's mclc in that version.`,
      ExitCode.BackendFailure,
    );
  }
  if (!(HOST_COMMANDS as readonly string[]).includes(command)) {
    return fail(`\`${command}\` is not a command a host runs`, `A host runs ${HOST_COMMANDS.join(', ')}.`, ExitCode.Invalid);
  }
  const root = resolve(ctx.cwd, o.root);
  mkdirSync(join(root, '.mcl'), { recursive: true, mode: 0o700 });
  // Documents (status, doctor) are printed whole and indented: the client reads one value per line.
  let doc = '';
  const lineCtx: Context = { ...ctx, cwd: root, out: write };
  const docCtx: Context = { ...ctx, cwd: root, out: (t) => void (doc += t) };
  const opts = clientOptions(optionsJson);
  const str = (k: string) => (typeof opts[k] === 'string' ? (opts[k] as string) : undefined);
  const base = { root, json: true, lockTimeout: str('lockTimeout') };
  try {
    switch (command) {
      case 'apply': {
        const file = join(root, '.mcl', `host-plan-${process.pid}.json`);
        writeFileSync(file, readStdin(MAX_PLAN_BYTES), { mode: 0o600 });
        try {
          return await applyCommand(lineCtx, file, {
            ...base,
            hostSide: true,
            replace: Array.isArray(opts.replace) ? opts.replace : [],
            readyTimeout: str('readyTimeout'),
            ...(str('part') !== undefined ? { part: str('part') } : {}),
            ...(opts.metrics !== undefined ? { metrics: opts.metrics === true ? true : str('metrics') } : {}),
          });
        } finally {
          rmSync(file, { force: true });
        }
      }
      case 'destroy':
        return await destroyCommand(lineCtx, base);
      case 'logs':
        return await logsCommand(lineCtx, str('instance') ?? '', { ...base, follow: opts.follow === true, tail: str('tail'), clone: str('clone') });
      case 'state': {
        const state = readStateFile(defaultStatePath(root), root, false) ?? null;
        write(JSON.stringify({ type: 'state', state }) + '\n');
        return ExitCode.Ok;
      }
      case 'checkpoint': {
        const { checkpointCommand } = await import('./checkpoint');
        return await checkpointCommand(lineCtx, Array.isArray(opts.instances) ? opts.instances : [], { ...base, out: str('out') });
      }
      case 'restore': {
        const { restoreCommand } = await import('./checkpoint');
        const dir = str('dir');
        if (!dir) throw new CliError('restore needs the directory of a checkpoint', ExitCode.Invalid);
        return await restoreCommand(lineCtx, dir, { ...base, readyTimeout: str('readyTimeout') });
      }
      case 'audit': {
        const { auditCommand } = await import('./operations');
        return await auditCommand(lineCtx, { ...base, follow: opts.follow === true, tail: str('tail') });
      }
      case 'usage':
      case 'audit-verify': {
        const { usageCommand, auditVerifyCommand } = await import('./operations');
        const code = command === 'usage' ? await usageCommand(docCtx, { ...base, since: str('since'), by: str('by') }) : await auditVerifyCommand(docCtx, base);
        write(JSON.stringify({ type: command, report: JSON.parse(doc) }) + '\n');
        return code;
      }
      case 'link-identity':
      case 'link-config': {
        // The link of a deployment placed on several hosts (links.ts): the key is made and kept here;
        // only the certificate goes back to the client.
        const { localLinkStep } = await import('./links');
        const name = str('name');
        if (command === 'link-identity') {
          if (!name) throw new CliError('link-identity needs the name of the target', ExitCode.Invalid);
          const cert = await localLinkStep(lineCtx, str('backend') ?? 'kvm', base, (b, opts) => b.linkIdentity!(opts, name).then((r) => r.cert));
          write(JSON.stringify({ type: 'link-identity', cert }) + '\n');
          return ExitCode.Ok;
        }
        let config: unknown;
        try {
          config = JSON.parse(readStdin(MAX_LINK_CONFIG_BYTES, 'the link configuration sent'));
        } catch (e) {
          if (e instanceof CliError) throw e;
          throw new CliError('the link configuration sent is not JSON', ExitCode.Invalid);
        }
        // The backend checks every field (as the supervisor does when it reads the file); only the shape it is given is checked here.
        const c = config as { name?: unknown; peers?: unknown };
        if (!config || typeof config !== 'object' || typeof c.name !== 'string' || !Array.isArray(c.peers)) throw new CliError('the link configuration sent has no name or peers', ExitCode.Invalid);
        const r = await localLinkStep(lineCtx, str('backend') ?? 'kvm', base, (b, opts) => b.linkConfig!(opts, config as LinkConfigInput));
        write(JSON.stringify({ type: 'link-config', changed: r.changed }) + '\n');
        return ExitCode.Ok;
      }
      case 'migrate-in':
      case 'migrate-out': {
        // One step of `mclc migrate` (migrate.ts): the peer's certificate comes on standard input.
        const { hostMigrateStep, MAX_MIGRATE_STDIN } = await import('./migrate');
        return await hostMigrateStep(lineCtx, command, opts, readStdin(MAX_MIGRATE_STDIN, 'the certificate sent'), base);
      }
      case 'status':
      case 'doctor': {
        const code = command === 'status' ? await statusCommand(docCtx, base) : await doctorCommand(docCtx, { json: true });
        write(JSON.stringify({ type: command, report: JSON.parse(doc) }) + '\n');
        return code;
      }
    }
  } catch (e) {
    if (e instanceof CliError) return fail(e.message, e.hint ?? '', e.code);
    throw e;
  }
  return ExitCode.Ok;
}
