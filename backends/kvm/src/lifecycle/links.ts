// The links of a deployment placed on several hosts: when the plan has
// channels whose ends are on different hosts, the supervisor's broker carries
// them over the links that the run directory's link.json describes (this
// host's identity, the other hosts' pinned certificates and addresses;
// spec/hosts.md, "Links between hosts"). The links close with the broker.

import { join } from 'node:path';
import { crossHostChannels, type Plan } from '@mcl/plan';
import type { Broker } from '@mcl/broker';
import { readSmallJson } from './rundir';

/** Largest link.json read: a few certificates and a key. */
const MAX_LINK_CONFIG = 1024 * 1024;

/**
 * Starts the links of `broker` when `plan` has channels between hosts.
 * Returns null when it has none, else the started links or why none could
 * be started (also logged: calls on those channels then fail with an error).
 */
export async function startLinks(broker: Broker, plan: Plan, runDir: string, log: (s: string) => void): Promise<import('@mcl/broker').Links | string | null> {
  const { Links, parseLinkConfig, LINK_CONFIG_FILE } = await import('@mcl/broker');
  if (crossHostChannels(plan).length === 0) return null;
  const file = join(runDir, LINK_CONFIG_FILE);
  const raw = readSmallJson(file, MAX_LINK_CONFIG);
  const cfg = raw === null ? `${file} is missing, unreadable or not JSON` : parseLinkConfig(raw);
  if (typeof cfg === 'string') {
    const why = `the plan has channels between hosts, but no link can carry them: ${cfg}`;
    log(`broker error: ${why}`);
    return why;
  }
  const links = new Links(broker, {
    ...cfg,
    log: (e) => {
      if (e.level !== 'debug') log(`link ${e.level}: ${e.message}`);
    },
  });
  try {
    await links.start();
  } catch (e) {
    const why = `cannot listen for the other hosts: ${(e as Error).message}`;
    log(`link error: ${why}`);
    await links.close();
    return why;
  }
  return links;
}
