// Which hosts of a plan over several targets get a link, to whom, dialling or
// listening where (cli/src/commands/links.ts).

import { describe, expect, it } from 'vitest';
import type { Plan } from '@mcl/plan';
import { linkConfigs, linkedTargets } from '../src/commands/links';
import { CliError } from '../src/exit';
import { webstackPlan } from '../../plan/test/fixtures';

/** The web stack (web -> app -> db) on three targets, one instance each, with these hosts. */
function threeHosts(hosts: (string | undefined)[]): Plan {
  const plan = structuredClone(webstackPlan());
  const names = ['a', 'b', 'c'];
  plan.targets = names.map((name, i) => ({ ...plan.target, name, ...(hosts[i] !== undefined ? { host: hosts[i] } : {}) }));
  plan.target = plan.targets[0];
  const ids = ['web', 'app', 'db'];
  for (const i of plan.instances) i.target = names[ids.indexOf(i.id)] ?? 'a';
  return plan;
}

describe('link configurations', () => {
  it('links the hosts that share channels, the first name dialling the host of the other\'s address', () => {
    const plan = threeHosts(['ssh://u@10.0.0.1/w', 'ssh://10.0.0.2:2222/w', 'ssh://[fd00::3]/w']);
    expect(linkedTargets(plan).map((t) => t.name)).toEqual(['a', 'b', 'c']);
    const certs = new Map([['a', 'A'], ['b', 'B'], ['c', 'C']]);
    const [a, b, c] = linkConfigs(plan, certs, 7411);
    // web (a) -> app (b) -> db (c): a and c share no channel, so they have no link.
    expect(a).toEqual({ name: 'a', peers: [{ name: 'b', cert: 'B', host: '10.0.0.2', port: 7411 }] });
    expect(b).toEqual({ name: 'b', peers: [{ name: 'a', cert: 'A', host: '', port: 0 }, { name: 'c', cert: 'C', host: 'fd00::3', port: 7411 }], listen: { host: '0.0.0.0', port: 7411 } });
    expect(c).toEqual({ name: 'c', peers: [{ name: 'b', cert: 'B', host: '', port: 0 }], listen: { host: '::', port: 7411 } });
  });

  it('takes the address and port of a target\'s own link before its SSH host and the run\'s port', () => {
    const plan = threeHosts(['ssh://u@10.0.0.1/w', 'ssh://10.0.0.2:2222/w', 'ssh://node3/w']);
    plan.targets![1].link = '192.168.7.2:7500';
    plan.targets![2].link = ':7600';
    const [a, b, c] = linkConfigs(plan, new Map([['a', 'A'], ['b', 'B'], ['c', 'C']]), 7411);
    expect(a.peers).toEqual([{ name: 'b', cert: 'B', host: '192.168.7.2', port: 7500 }]);
    expect(b.listen).toEqual({ host: '0.0.0.0', port: 7500 });
    expect(b.peers[1]).toEqual({ name: 'c', cert: 'C', host: 'node3', port: 7600 });
    expect(c.listen).toEqual({ host: '0.0.0.0', port: 7600 });
    // A target on the machine mclc runs on can be dialled at its link's address.
    const local = threeHosts(['ssh://10.0.0.1/w', undefined, 'ssh://10.0.0.3/w']);
    local.targets![1].link = '[fd00::2]:7411';
    const [, lb] = linkConfigs(local, new Map([['a', 'A'], ['b', 'B'], ['c', 'C']]), 1);
    expect(lb.listen).toEqual({ host: '::', port: 7411 });
    // A plan file written by hand is checked here too.
    plan.targets![2].link = 'node3';
    expect(() => linkConfigs(plan, new Map([['a', 'A'], ['b', 'B'], ['c', 'C']]), 1)).toThrow(/target c has the link "node3": a link is written/);
  });

  it('lets the machine mclc runs on dial, and says what to do when another host would have to dial it', () => {
    const dials = threeHosts([undefined, 'ssh://10.0.0.2/w', 'ssh://10.0.0.3/w']);
    expect(linkConfigs(dials, new Map([['a', 'A'], ['b', 'B'], ['c', 'C']]), 1)[0].peers[0]).toMatchObject({ name: 'b', host: '10.0.0.2' });
    const listens = threeHosts(['ssh://10.0.0.1/w', undefined, 'ssh://10.0.0.3/w']);
    expect(() => linkConfigs(listens, new Map([['a', 'A'], ['b', 'B'], ['c', 'C']]), 1)).toThrow(CliError);
    expect(() => linkConfigs(listens, new Map([['a', 'A'], ['b', 'B'], ['c', 'C']]), 1)).toThrow(/target b runs on the machine mclc runs on, which has no address that target a could dial/);
  });
});
