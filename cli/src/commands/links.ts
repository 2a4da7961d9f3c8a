// The links between the hosts of a plan over several targets (spec/hosts.md,
// "Links between hosts"): before the parts are applied, `apply` has every host
// with an end of a cross-host channel make (or keep) its link identity, where
// its private key stays, and collects only the certificates; then it writes
// each host's link.json with the certificates of the hosts it shares channels
// with, the address it dials for each (the host of the peer's target) and,
// when a peer dials it, where it listens. Each host's backend does the work
// (`linkIdentity`, `linkConfig`), here for a target without `host`, over SSH
// (`mclc __host ... link-identity|link-config`) for one with it.

import { channelsBetween, crossHostChannels, instanceTargets, parseHostAddress, parseLinkAddress, type Plan, type PlanTarget } from '@mcl/plan';
import type { LinkConfigInput } from '@mcl/plan/backend';
import { backendRow, loadBackend } from '../backends';
import type { Context } from '../context';
import { CliError, ExitCode } from '../exit';
import { backendOptions, type LifecycleOptions, withBackend } from './lifecycle';

/** The TCP port a host's link listens on, and the others dial, when its target has no `link` (`MCL_LINK_PORT` replaces it). */
export const DEFAULT_LINK_PORT = 7411;

/** The link port of this run: `MCL_LINK_PORT` or the default. */
export function linkPort(ctx: Context): number {
  const text = ctx.env.MCL_LINK_PORT;
  if (text === undefined || text === '') return DEFAULT_LINK_PORT;
  const n = Number(text);
  if (!/^\d{1,5}$/.test(text) || n < 1 || n > 65535) throw new CliError(`MCL_LINK_PORT=${JSON.stringify(text)} is not a TCP port`, ExitCode.Invalid, 'Give a port from 1 to 65535, or unset it for the default 7411.');
  return n;
}

/** The targets with an end of a cross-host channel, in deploy order. */
export function linkedTargets(plan: Plan): PlanTarget[] {
  const cross = crossHostChannels(plan);
  const where = instanceTargets(plan);
  const ends = new Set(cross.flatMap((c) => [where.get(c.from.instance), where.get(c.to.instance)]));
  return (plan.targets ?? []).filter((t) => ends.has(t.name));
}

/**
 * The configuration of each linked target's link, given every linked target's certificate:
 * the peers it shares channels with (pinned by certificate), the address of each peer it dials
 * (the target whose name sorts first dials), and where it listens when some peer dials it.
 * `port` is the port of the targets without a `link` of their own.
 */
export function linkConfigs(plan: Plan, certs: ReadonlyMap<string, string>, port: number): LinkConfigInput[] {
  const linked = linkedTargets(plan);
  return linked.map((t) => {
    const peers = linked.filter((p) => p.name !== t.name && channelsBetween(plan, t.name, p.name).length > 0);
    const dialledBy = peers.filter((p) => p.name < t.name);
    const listen = dialledBy.length ? { host: listenAll(t), port: linkSetting(t)?.port ?? port } : undefined;
    return {
      name: t.name,
      peers: peers.map((p) => ({ name: p.name, cert: certs.get(p.name)!, ...(t.name < p.name ? { host: dialAddress(p, t), port: linkSetting(p)?.port ?? port } : { host: '', port: 0 }) })),
      ...(listen ? { listen } : {}),
    };
  });
}

/** A target's own `link` setting, parsed (the compiler checked it; a plan file is checked against the schema only, so a bad one is an error here). */
function linkSetting(t: PlanTarget): { host?: string; port: number } | undefined {
  if (t.link === undefined) return undefined;
  const parsed = parseLinkAddress(t.link);
  if (!parsed.ok) throw new CliError(`target ${t.name} has the link ${JSON.stringify(t.link)}: ${parsed.reason}`, ExitCode.Invalid, 'Write e.g. `link "10.0.5.2:7411"` or `link ":7412"` in the target, and plan again.');
  return parsed.address;
}

/**
 * The address peers dial to reach `t`'s link: the address of its `link`, else the host of its SSH address; undefined
 * when the target runs on the machine mclc runs on and names no link address. A malformed `link` or `host` (a plan
 * file is checked against the schema only) is an error naming the value.
 */
export function linkAddress(t: PlanTarget): string | undefined {
  const own = linkSetting(t)?.host;
  if (own !== undefined) return own;
  if (t.host === undefined) return undefined;
  const parsed = parseHostAddress(t.host);
  if (!parsed.ok) throw new CliError(`target ${t.name} has the host ${JSON.stringify(t.host)}: ${parsed.reason}`, ExitCode.Invalid, 'Write e.g. `host "ssh://user@node1"` in the target, and plan again.');
  return parsed.address.host;
}

/** The address `from` dials to reach `peer`'s link (see linkAddress). */
export function dialAddress(peer: PlanTarget, from: PlanTarget): string {
  const address = linkAddress(peer);
  if (address === undefined) {
    throw new CliError(
      `target ${peer.name} runs on the machine mclc runs on, which has no address that target ${from.name} could dial for their link`,
      ExitCode.Invalid,
      `Give target ${peer.name} a host (\`host "ssh://..."\`) or a link address (\`link "10.0.5.2:7411"\`), or name it so that it sorts before ${from.name} (the first name dials, the other listens).`,
    );
  }
  return address;
}

/** A listener takes connections on every address of its host (only pinned certificates get through the handshake). */
function listenAll(t: PlanTarget): string {
  const parsed = t.host !== undefined ? parseHostAddress(t.host) : undefined;
  const dialled = linkSetting(t)?.host ?? (parsed?.ok ? parsed.address.host : '');
  return dialled.includes(':') ? '::' : '0.0.0.0';
}

/** What `apply` says of a host when a link step fails there. */
function where(t: PlanTarget): string {
  return `target ${t.name}${t.host ? ` (${t.host})` : ' (this machine)'}`;
}

/** Makes (or keeps) every linked host's identity and writes every linked host's link.json. */
export async function prepareLinks(ctx: Context, plan: Plan, o: LifecycleOptions): Promise<void> {
  const linked = linkedTargets(plan);
  if (linked.length === 0) return;
  const port = linkPort(ctx);
  const certs = new Map<string, string>();
  for (const t of linked) {
    const step = `cannot make the link identity of ${where(t)}`;
    const cert = await onTarget(ctx, t, o, step, (remote) => remote.remoteLinkIdentity(ctx, t.host!, t.backend, t.name, o.lockTimeout), (backend, opts) => backend.linkIdentity!(opts, t.name).then((r) => r.cert));
    certs.set(t.name, cert);
  }
  const configs = linkConfigs(plan, certs, port);
  for (const t of linked) {
    const config = configs.find((c) => c.name === t.name)!;
    await onTarget(ctx, t, o, `cannot write the link configuration of ${where(t)}`, (remote) => remote.remoteLinkConfig(ctx, t.host!, t.backend, config, o.lockTimeout), (backend, opts) => backend.linkConfig!(opts, config));
  }
  if (!o.json) {
    const ports = linked.map((t) => linkSetting(t)?.port ?? port);
    const where = ports.every((p) => p === ports[0]) ? `port ${ports[0]}` : `ports ${linked.map((t, i) => `${t.name} ${ports[i]}`).join(', ')}`;
    ctx.err(`Links: ${linked.map((t) => t.name).join(', ')} carry ${crossHostChannels(plan).length} channel(s) between hosts (${where}).\n`);
  }
}

type Remote = typeof import('./remote-lifecycle');
type Backend = Awaited<ReturnType<typeof loadBackend>>;

/** Why a backend cannot run a link step: it lacks the link functions of the contract. */
function cannotLink(mod: Backend, row: ReturnType<typeof backendRow>): CliError | undefined {
  return !mod.linkIdentity || !mod.linkConfig ? new CliError(`the ${row.title} backend cannot carry channels between hosts`, ExitCode.BackendFailure, 'Place both ends of each channel on one target with `place`.') : undefined;
}

/**
 * Runs a step on target `t`'s host: over SSH for a target with `host`, this machine's backend for
 * the one without (`refuse` as in localBackendStep, a link step's by default), naming the target
 * and the step when it fails.
 */
export async function onTarget<T>(
  ctx: Context,
  t: PlanTarget,
  o: LifecycleOptions,
  step: string,
  remote: (r: Remote) => Promise<T>,
  local: (backend: Backend, opts: ReturnType<typeof backendOptions>) => Promise<T>,
  refuse: (backend: Backend, row: ReturnType<typeof backendRow>) => CliError | undefined = cannotLink,
): Promise<T> {
  try {
    if (t.host !== undefined) return await remote(await import('./remote-lifecycle'));
    return await localBackendStep(ctx, t.backend, { ...o, host: undefined }, refuse, local);
  } catch (e) {
    if (e instanceof CliError) throw new CliError(`${step}: ${e.message}`, e.code, e.hint);
    throw e;
  }
}

/** Runs a link step with this machine's backend `backend` (as the host side of `mclc __host` does too). */
export async function localLinkStep<T>(ctx: Context, backend: string, o: LifecycleOptions, body: (backend: Backend, opts: ReturnType<typeof backendOptions>) => Promise<T>): Promise<T> {
  return localBackendStep(ctx, backend, o, cannotLink, body);
}

/**
 * Runs one step of a command over several hosts with this machine's backend `backend`: `refuse`
 * says why the backend cannot do it (a missing optional function of the contract), `body` does it,
 * its failures turned into messages and exit codes as every lifecycle command turns them.
 */
export async function localBackendStep<T>(
  ctx: Context,
  backend: string,
  o: LifecycleOptions,
  refuse: (backend: Backend, row: ReturnType<typeof backendRow>) => CliError | undefined,
  body: (backend: Backend, opts: ReturnType<typeof backendOptions>) => Promise<T>,
): Promise<T> {
  const row = backendRow(backend, 'the target uses');
  const mod = await loadBackend(row);
  const refused = refuse(mod, row);
  if (refused) throw refused;
  // Errors become CliErrors here; the command that runs the step reports them (once, at its end).
  return withBackend(ctx, o, row, false, (opts) => body(mod, opts));
}
