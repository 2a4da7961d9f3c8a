// Egress: a required port whose traffic leaves the system for an address
// outside it, through the broker (spec/syntax.md, "Egress"). This module holds
// the two decisions that are egress's own: what a destination address is, and
// which protocols can leave (a byte stream or HTTP). The system checker
// (systems.ts) reports what they find; the plan carries the result.

import type { PlanEgressDestination } from '@mcl/plan';
import type { Types } from '../types/message-types';
import type { ProtocolInfo } from '../types/protocols';
import { refinementProblem } from '../types/refine';

export const STREAM_PROTOCOL = 'std.tcp.Stream';
export const HTTP_PROTOCOL = 'std.http.Http';

/** The longest destination address accepted (a URL's host and path; nothing longer is needed to name a service). */
export const MAX_DESTINATION = 2048;

/** A DNS name: labels of letters, digits and hyphens, not starting or ending with a hyphen, 253 characters at most. */
const DNS_NAME = /^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
/** Characters of a path as it is sent on the wire: RFC 3986's pchar, `/` and percent escapes. */
const PATH = /^(\/([A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*)*$/;

/** A parsed destination, or why the text is not one (a sentence that ends without a full stop). */
export type DestinationResult = { ok: true; destination: PlanEgressDestination } | { ok: false; problem: string; hint: string };

function fail(problem: string, hint: string): DestinationResult {
  return { ok: false, problem, hint };
}

/**
 * Parses an egress destination: `tcp://host:port`, or `http://host[:port][/path]`
 * and `https://...` for HTTP. The host is a DNS name, an IPv4 address or an
 * IPv6 address in brackets; the port is required for `tcp` (1 to 65535) and
 * defaults to 80 and 443 for HTTP. Nothing else is accepted: no user name or
 * password (credentials belong to the guest's requests, not to the plan), no
 * query or fragment, no relative address. Pure, never throws.
 */
export function parseDestination(text: string): DestinationResult {
  if (text.length > MAX_DESTINATION) return fail(`the address is longer than ${MAX_DESTINATION} characters`, 'shorten it');
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(.*)$/s.exec(text);
  if (!m) return fail(`\`${text}\` is not an absolute address`, 'write the scheme, the host and the port, such as `"tcp://smtp.example.com:25"` or `"https://api.example.com/v1"`');
  const scheme = m[1].toLowerCase();
  const authority = m[2];
  const path = m[3];
  const rest = m[4];
  if (scheme !== 'tcp' && scheme !== 'http' && scheme !== 'https') {
    return fail(`\`${m[1]}\` is not a scheme an egress can use`, 'use `tcp://host:port` for a byte stream, `http://` or `https://` for HTTP');
  }
  if (rest !== '') return fail('an egress address has no query or fragment', 'remove what follows the path; the guest sends the query with each request');
  if (authority.includes('@')) return fail('an egress address has no user name or password', 'remove them; credentials go in the requests the guest sends (a header), never in the plan');
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::(.*))?$/.exec(authority);
  if (v6) {
    host = v6[1];
    portText = v6[2];
    if (!/^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$/.test(host)) return fail(`\`[${host}]\` is not an IPv6 address`, 'write an IPv6 address in brackets, such as `[2001:db8::1]`');
  } else {
    const colon = authority.lastIndexOf(':');
    host = colon >= 0 ? authority.slice(0, colon) : authority;
    portText = colon >= 0 ? authority.slice(colon + 1) : undefined;
    if (host === '') return fail('the address has no host', 'write a host name or an IP address after `//`');
    if (!IPV4.test(host) && (!DNS_NAME.test(host) || /^[0-9.]+$/.test(host))) return fail(`\`${host}\` is not a host name or an IP address`, 'write a DNS name such as `smtp.example.com`, an IPv4 address, or an IPv6 address in brackets');
  }
  let port: number;
  if (portText === undefined || portText === '') {
    if (scheme === 'tcp') return fail('a `tcp` address needs a port', `write \`tcp://${v6 ? `[${host}]` : host}:<port>\``);
    port = scheme === 'https' ? 443 : 80;
  } else {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) return fail(`\`${portText}\` is not a port number`, 'write a port from 1 to 65535');
    port = Number(portText);
  }
  if (scheme === 'tcp' && path !== '' && path !== '/') return fail('a `tcp` address has no path', 'remove the path: a byte stream goes to a host and a port');
  if (scheme !== 'tcp') {
    if (path !== '' && !PATH.test(path)) return fail(`\`${path}\` is not a path the broker can send`, 'write a path of letters, digits, `-._~` and percent escapes, separated by `/`');
    if (path.split('/').some((s) => s === '.' || s === '..' || /^(%2e|\.){1,2}$/i.test(s))) return fail('the path has a `.` or `..` segment', 'write the path without them');
  }
  const destination: PlanEgressDestination = { scheme, host: host.toLowerCase(), port };
  if (scheme !== 'tcp') destination.path = path === '' ? '/' : path;
  return { ok: true, destination };
}

/**
 * What a port's protocol can send out: `tcp` when it is std.tcp.Stream or
 * refines it, `http` when it is std.http.Http or refines it (its narrower
 * request and response types are what the broker checks on the way out and
 * back), undefined otherwise. `base` finds the two stdlib protocols, which are
 * absent when no module loads them.
 */
export function egressKind(types: Types, p: ProtocolInfo, base: (qname: string) => ProtocolInfo | undefined): 'tcp' | 'http' | undefined {
  if (p.entry.qname === STREAM_PROTOCOL) return 'tcp';
  if (p.entry.qname === HTTP_PROTOCOL) return 'http';
  const http = base(HTTP_PROTOCOL);
  if (http && refinementProblem(types, p, http) === undefined) return 'http';
  const stream = base(STREAM_PROTOCOL);
  if (stream && refinementProblem(types, p, stream) === undefined) return 'tcp';
  return undefined;
}
