// The kernel command line a rendered VirtualMachine boots with, read by the
// guest agent's own parser (backends/kvm/guest/agent.sh, run with busybox):
// the agent listens on exactly the ports the machine's interface admits and
// the broker dials.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderObjects } from '../src/render';
import { examplePlan } from './plans';

interface Domain {
  devices: { interfaces: { ports: { port: number }[] }[] };
  firmware: { kernelBoot: { kernelArgs: string } };
}

const AGENT = join(__dirname, '..', '..', 'kvm', 'guest', 'agent.sh');
const haveBusybox = spawnSync('busybox', ['true']).error === undefined;

describe.skipIf(!haveBusybox)('the guest kernel command line', () => {
  it('gives the agent, slot by slot, the ports the VirtualMachine admits', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcl-cmdline-'));
    try {
      const vms = renderObjects(examplePlan('webstack').plan!).filter((o) => o.kind === 'VirtualMachine' && o.metadata.name.endsWith('-0'));
      expect(vms.length).toBeGreaterThan(0);
      // The first clone of each instance (its clones share the command line); every slot 0..30 is
      // asked of the agent, which must answer exactly the admitted ports.
      for (const vm of vms) {
        const dom = (vm as unknown as { spec: { template: { spec: { domain: Domain } } } }).spec.template.spec.domain;
        const admitted: number[] = dom.devices.interfaces[0].ports.map((p: { port: number }) => p.port);
        writeFileSync(join(dir, 'cmdline'), dom.firmware.kernelBoot.kernelArgs + '\n');
        const r = spawnSync('busybox', ['sh', '-c', `. ${AGENT} functions; [ "$(transport)" = tcp ] || exit 9; s=0; while [ $s -le 30 ]; do tcp_port $s; s=$((s + 1)); done`], {
          env: { ...process.env, MCL_CMDLINE: join(dir, 'cmdline') },
          encoding: 'utf8',
        });
        expect(r.status).toBe(0);
        expect(r.stdout.trim().split('\n').map(Number)).toEqual(admitted);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
