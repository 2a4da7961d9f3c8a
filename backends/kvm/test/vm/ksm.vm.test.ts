// Guest RAM stays out of kernel same-page merging on real QEMU, with QEMU's
// own memory offered to KSM (MCL_QEMU_KSM=1) and without. ksmd need not run:
// what is checked is which mappings the kernel would scan (the `mg` flag).

import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forkClone, type Clone, type Template } from '../../src/vm/index';
import { testTemplate } from '../fixtures/vm';
import { readKsmUsage } from '../../src/vm/memory';

const cacheDir = process.env.MCL_CACHE_DIR ?? path.join(os.tmpdir(), 'mcl-vm-test-cache');
let template: Template;
let run: string;
const clones: Clone[] = [];

beforeAll(async () => {
  run = await mkdtemp(path.join(os.tmpdir(), 'mcl-vmk-'));
  template = await testTemplate(cacheDir);
}, 120_000);

afterAll(async () => {
  await Promise.all(clones.map((c) => c.kill()));
  if (run) await rm(run, { recursive: true, force: true });
});

/** VmFlags of each mapping of a process: the guest RAM mapping and the heap. */
async function flags(pid: number, memPath: string): Promise<{ guestRam: string[]; heap: string[] }> {
  const text = await readFile(`/proc/${pid}/smaps`, 'utf8');
  const out = { guestRam: [] as string[], heap: [] as string[] };
  for (const block of text.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const header = block.slice(0, block.indexOf('\n'));
    const vm = /^VmFlags:(.*)$/m.exec(block)?.[1] ?? '';
    if (header.endsWith(` ${memPath}`)) out.guestRam.push(vm);
    else if (header.endsWith(' [heap]')) out.heap.push(vm);
  }
  return out;
}

async function fork(name: string, ksm: boolean): Promise<Clone> {
  const saved = process.env.MCL_QEMU_KSM;
  if (ksm) process.env.MCL_QEMU_KSM = '1';
  else delete process.env.MCL_QEMU_KSM;
  try {
    const c = await forkClone(template, { name, controlSocket: path.join(run, `${name}.ctl`), dataPortSockets: [], logFile: path.join(run, `${name}.log`) });
    clones.push(c);
    return c;
  } finally {
    if (saved === undefined) delete process.env.MCL_QEMU_KSM;
    else process.env.MCL_QEMU_KSM = saved;
  }
}

// The prctl exists from Linux 6.4, which also added general_profit.
describe.skipIf(!existsSync('/sys/kernel/mm/ksm/general_profit'))('KSM', () => {
  it('offers QEMU its own memory when asked, and never the guest RAM', async () => {
    const c = await fork('ksm-on', true);
    await c.control.ping(30_000);
    const usage = await readKsmUsage(c.pid);
    // Kernels before 6.10 do not report it (null).
    if (usage.mergeAny !== null) expect(usage.mergeAny).toBe(true);
    const f = await flags(c.pid, template.memPath);
    expect(f.heap.length).toBeGreaterThan(0);
    expect(f.heap.every((v) => / mg\b/.test(v))).toBe(true);
    expect(f.guestRam.length).toBeGreaterThan(0);
    for (const v of f.guestRam) expect(v).not.toMatch(/ mg\b/);
  });
  it('leaves everything unmergeable but the ROMs without it, the guest RAM included', async () => {
    const c = await fork('ksm-off', false);
    await c.control.ping(30_000);
    const usage = await readKsmUsage(c.pid);
    if (usage.mergeAny !== null) expect(usage.mergeAny).toBe(false);
    const f = await flags(c.pid, template.memPath);
    for (const v of [...f.guestRam, ...f.heap]) expect(v).not.toMatch(/ mg\b/);
  });
});
