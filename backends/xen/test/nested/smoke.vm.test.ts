// Smoke test of the nested-Xen test bed (spec/xen-testing.md): Debian's Xen
// 4.17 boots under QEMU TCG with a PV dom0, reports HVM and HAP, starts a PVH
// guest from a minimal xl.cfg, carries a line both ways over a vchan (dom0
// the server, the guest the client), and destroying the guest leaves no
// domain. Needs no Xen backend: the guest and its vchan client are the
// test bed's own.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findQemu } from '../../../kvm/src/vm/paths';
import { NestedXen, pvhConfig } from './harness';

const qemu = findQemu();
let nx: NestedXen;

/** Pids of live processes whose command line mentions `text`. */
function pidsMentioning(text: string): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(text);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Polls `fn` every second until it returns a value, or fails after `ms`. */
async function until<T>(what: string, ms: number, fn: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

describe.skipIf(!qemu)(`nested Xen smoke${qemu ? '' : ' (skipped: no qemu-system-x86_64; install qemu-system-x86)'}`, () => {
  beforeAll(async () => {
    nx = await NestedXen.start({ log: (l) => console.log(`nested xen: ${l}`) });
  }, 420_000);

  afterAll(async () => {
    if (!nx) return;
    const dir = nx.runDir;
    await nx.close();
    // Everything the test bed started is gone, and so is its run directory (unless MCL_NX_KEEP=1 asked to keep it).
    expect(pidsMentioning(dir)).toEqual([]);
    expect(existsSync(dir)).toBe(process.env.MCL_NX_KEEP === '1');
  }, 60_000);

  it('boots Xen 4.17 with HVM and HAP under TCG', async () => {
    const info = await nx.sh('xl info');
    expect(info).toMatch(/^xen_version\s*:\s*4\.17\./m);
    const caps = /^virt_caps\s*:\s*(.*)$/m.exec(info)?.[1].split(/\s+/) ?? [];
    expect(caps).toEqual(expect.arrayContaining(['hvm', 'hap']));
    expect(nx.serialLog()).toMatch(/HVM: SVM enabled/);
  }, 120_000);

  it('starts a PVH guest whose console reaches xenconsoled', async () => {
    await nx.put('/run/nx-smoke.cfg', pvhConfig('nx-smoke'));
    await nx.sh('xl create /run/nx-smoke.cfg', { timeoutMs: 180_000 });
    const list = await nx.sh('xl list nx-smoke');
    expect(list).toMatch(/^nx-smoke\s+\d+\s+128\s+1\s/m);
    await until('the guest console', 180_000, async () => {
      const log = await nx.sh('cat /var/log/xen/console/guest-nx-smoke.log 2>/dev/null || true');
      return log.includes('nx-guest: up') ? log : undefined;
    });
  }, 400_000);

  it('carries a line both ways over a vchan: dom0 serves, the guest maps', async () => {
    const out = await nx.sh('D=$(xl domid nx-smoke) && nx-vchan-serve "$D" "/local/domain/$D/data/nx/p1" "ping 42"', { timeoutMs: 120_000 });
    expect(out.trim()).toBe('reply: pong ping 42');
    await until('the guest to log the line', 60_000, async () => {
      const log = await nx.sh('cat /var/log/xen/console/guest-nx-smoke.log');
      return log.includes('nx-guest: got ping 42') ? log : undefined;
    });
  }, 240_000);

  it('destroys the guest and leaves no domain but dom0', async () => {
    await nx.sh('xl destroy nx-smoke', { timeoutMs: 120_000 });
    const list = await nx.sh('xl list');
    const names = list.split('\n').slice(1).filter(Boolean).map((l) => l.split(/\s+/)[0]);
    expect(names).toEqual(['Domain-0']);
  }, 180_000);
});
