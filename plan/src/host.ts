// The address of a host a target deploys to: `ssh://[user@]host[:port][/path]`.
//
// One parser for the compiler (which checks a target's `host` and reports a
// diagnostic at it) and the CLI (which turns it into an `ssh` command line).
// It does no IO and never throws: a bad address gives a reason to show.

export interface HostAddress {
  /** The login name, absent to let ssh decide (its config, then the local user name). */
  user?: string;
  /** A host name, an IPv4 address or an IPv6 address without its brackets. */
  host: string;
  /** The TCP port, absent to let ssh decide (its config, then 22). */
  port?: number;
  /**
   * The deployment's workspace on the host (its state, lock and run
   * directories live there): an absolute path, or one relative to the login's
   * home directory. `DEFAULT_HOST_WORKSPACE` when the address has no path.
   */
  workspace: string;
}

/** Where a deployment lives on a host whose address names no path (relative to the login's home directory). */
export const DEFAULT_HOST_WORKSPACE = 'mcl';

const USER_RE = /^[a-z_][a-z0-9_.-]{0,31}$/i;
const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV6_RE = /^[0-9A-Fa-f:.]{2,45}$/;
/** Path segments the remote shell passes through unquoted and unexpanded. */
const PATH_RE = /^[A-Za-z0-9._/-]{1,240}$/;

/** Parses a host address, or says why it is not one. */
export function parseHostAddress(text: string): { ok: true; address: HostAddress } | { ok: false; reason: string } {
  const bad = (reason: string) => ({ ok: false as const, reason });
  const m = /^ssh:\/\/(?:([^@/]*)@)?(\[[^\]]*\]|[^:/]*)(?::([^/]*))?(\/.*)?$/.exec(text);
  if (!m) return bad('a host is written `ssh://[user@]host[:port][/path]`');
  const [, user, rawHost, rawPort, rawPath] = m;
  if (user !== undefined && !USER_RE.test(user)) return bad(`\`${user}\` is not a login name`);
  const bracketed = rawHost.startsWith('[');
  const host = bracketed ? rawHost.slice(1, -1) : rawHost;
  if (bracketed ? !IPV6_RE.test(host) || !host.includes(':') : !HOSTNAME_RE.test(host)) return bad(`\`${rawHost}\` is not a host name or address`);
  let port: number | undefined;
  if (rawPort !== undefined) {
    if (!/^\d{1,5}$/.test(rawPort) || Number(rawPort) < 1 || Number(rawPort) > 65535) return bad(`\`${rawPort}\` is not a TCP port (1 to 65535)`);
    port = Number(rawPort);
  }
  let workspace = DEFAULT_HOST_WORKSPACE;
  if (rawPath !== undefined && rawPath !== '/') {
    // `ssh://h/abs/dir` names /abs/dir; `ssh://h/~/dir` names dir under the home directory.
    const p = rawPath.startsWith('/~/') ? rawPath.slice(3) : rawPath;
    if (!PATH_RE.test(p) || p.split('/').some((s) => s === '..')) return bad(`\`${rawPath}\` is not a workspace path (letters, digits, \`._-/\`, no \`..\`)`);
    workspace = p.replace(/\/+$/, '');
  }
  return { ok: true, address: { ...(user !== undefined ? { user } : {}), host, ...(port !== undefined ? { port } : {}), workspace } };
}

/** Where a target's link is reached: the address other hosts dial (absent: its SSH host's) and the port it listens on. */
export interface LinkAddress {
  host?: string;
  port: number;
}

/**
 * Parses a target's `link` setting, `HOST:PORT`, `[IPV6]:PORT` or `:PORT` (the address of its
 * SSH host), or says why it is not one.
 */
export function parseLinkAddress(text: string): { ok: true; address: LinkAddress } | { ok: false; reason: string } {
  const bad = (reason: string) => ({ ok: false as const, reason });
  const m = /^(\[[^\]]*\]|[^:[\]]*):([^:]*)$/.exec(text);
  if (!m) return bad('a link is written `host:port`, `[ipv6]:port` or `:port`');
  const [, rawHost, rawPort] = m;
  if (!/^\d{1,5}$/.test(rawPort) || Number(rawPort) < 1 || Number(rawPort) > 65535) return bad(`\`${rawPort}\` is not a TCP port (1 to 65535)`);
  if (rawHost === '') return { ok: true, address: { port: Number(rawPort) } };
  const bracketed = rawHost.startsWith('[');
  const host = bracketed ? rawHost.slice(1, -1) : rawHost;
  if (bracketed ? !IPV6_RE.test(host) || !host.includes(':') : !HOSTNAME_RE.test(host)) return bad(`\`${rawHost}\` is not a host name or address`);
  return { ok: true, address: { host, port: Number(rawPort) } };
}

/** The address as a person reads it in messages: `user@host:port`. */
export function hostLabel(a: HostAddress): string {
  const h = a.host.includes(':') ? `[${a.host}]` : a.host;
  return `${a.user ? `${a.user}@` : ''}${h}${a.port ? `:${a.port}` : ''}`;
}

/**
 * The machine a target's host address names, for "never on the same host": the host name or
 * address in lower case, or "" for the machine `mclc apply` runs on (no address). Two addresses
 * of one machine under different names are not recognised as one.
 */
export function hostMachine(url: string | undefined): string {
  if (url === undefined) return '';
  const parsed = parseHostAddress(url);
  return parsed.ok ? parsed.address.host.toLowerCase() : url;
}

/** Where a target's deployment lives: its machine and workspace there ("" for the local one). */
export function hostWorkspaceKey(url: string | undefined): string {
  if (url === undefined) return '';
  const parsed = parseHostAddress(url);
  return parsed.ok ? `${parsed.address.host.toLowerCase()}:${parsed.address.port ?? 22}/${parsed.address.workspace}` : url;
}
