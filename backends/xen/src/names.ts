// Names of a deployment's domains. Xen domains are not processes: they carry
// no environment with the deployment's token, so their names do. Every domain
// of a deployment is named `mcl-<tag>-...`, where the tag is derived from the
// deployment's random token (rundir.ts), and a supervisor or `destroy`
// removes only domains with its own tag: never another deployment's, never a
// domain it did not name.

import { createHash } from 'node:crypto';

/** Xen and xenstore take names of at most 64 bytes; ours stay within [A-Za-z0-9._-]{1,63}. */
export const MAX_DOMAIN_NAME = 63;

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** The 10 hex digits that stand for the deployment in its domains' names. */
export function deploymentTag(token: string): string {
  return sha(`mcl-xen-domain-tag\0${token}`).slice(0, 10);
}

/** The prefix every domain of the deployment's names starts with. */
export function domainPrefix(tag: string): string {
  return `mcl-${tag}-`;
}

/**
 * A name part from an id of the plan: characters other than [A-Za-z0-9_-]
 * become `_`, and when that changed the id or it is long, a hash of the id
 * keeps two ids from getting the same name.
 */
function part(id: string, max: number): string {
  const clean = id.replace(/[^A-Za-z0-9_-]/g, '_');
  if (clean === id && clean.length <= max) return clean;
  return `${clean.slice(0, Math.max(1, max - 9))}~${sha(id).slice(0, 8)}`.replace('~', '_');
}

/** The domain of a clone: `mcl-<tag>-<instance>.<clone>`. */
export function cloneDomainName(tag: string, instance: string, clone: number): string {
  const suffix = `.${clone}`;
  return domainPrefix(tag) + part(instance, MAX_DOMAIN_NAME - domainPrefix(tag).length - suffix.length) + suffix;
}

/** The domain a template boots in, and its parked parent on a fork host: `mcl-<tag>-tpl.<template>`. */
export function templateDomainName(tag: string, template: string): string {
  const head = `${domainPrefix(tag)}tpl.`;
  return head + part(template, MAX_DOMAIN_NAME - head.length);
}

/** Whether a domain name is one of the deployment's. */
export function isDeploymentDomain(tag: string, name: string): boolean {
  return name.startsWith(domainPrefix(tag));
}

/** Whether a domain name is a clone's of some deployment (`mcl-<tag>-<instance>.<clone>`), not a template's. */
export function isCloneDomain(name: string): boolean {
  return /^mcl-[0-9a-f]{10}-(?!tpl\.).+\.\d+$/.test(name);
}
