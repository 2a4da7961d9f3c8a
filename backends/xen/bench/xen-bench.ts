// Benchmark of Xen guests on the nested-Xen test bed (run: npm run bench:xen,
// or node scripts/run-ts.mjs backends/xen/bench/xen-bench.ts).
//
// Boots Debian's Xen 4.17 under QEMU TCG (backends/xen/test/nested/harness.ts)
// and measures in dom0, in one run (bench/nested-dom0.sh):
// - cold boot of a PVH guest to ready: `xl create`, then the guest answers a
//   line on a vchan dom0 offers (the channel the backend's guests use);
// - restore to ready from a parked template: a guest booted once and saved
//   with `xl save` while it waits for dom0, restored paused under a new name,
//   the vchan offered, unpaused; ready = it answered, after Linux's resume;
// - memory per instance from the hypervisor: tot_pages and shr_pages of every
//   guest (nx-domstat, libxenctrl), with all of them running.
//
// Restore is the instance path of a hypervisor without memory sharing (the
// nested one here: TCG has no VT-x). The fork path is measured on an Intel
// host (spec/xen-testing.md, "On a fork host").
//
// Options: --cold N (default 3), --restores R (default 5), --memory MiB
// (default 128).

import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NestedXen, pvhConfig } from '../test/nested/harness';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const N_COLD = arg('cold', 3);
const N_RESTORES = arg('restores', 5);
const MEMORY_MIB = arg('memory', 128);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mib = (pages: number) => ((pages * 4096) / 1048576).toFixed(1);

/** The dom0 script beside this file (found from the repository root: a bundled run sees its entry's location). */
function dom0Script(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    for (const p of [path.join(dir, 'nested-dom0.sh'), path.join(dir, 'backends', 'xen', 'bench', 'nested-dom0.sh')]) {
      try {
        return readFileSync(p, 'utf8');
      } catch {
        // Not here; look further up.
      }
    }
  }
  throw new Error('backends/xen/bench/nested-dom0.sh not found');
}

interface Mem {
  domid: number;
  name: string;
  tot: number;
  shr: number;
  max: number;
}

async function main() {
  const started = Date.now();
  const nx = await NestedXen.start({
    // Dom0, the guests (cold boots and restores all stay up until the memory is read) and Xen's own.
    memoryMiB: 1024 + (N_COLD + N_RESTORES + 2) * (MEMORY_MIB + 16) + 256,
    deadlineMs: 60 * 60_000,
    log: (l) => console.log(`nested xen: ${l}`),
  });
  const bootMs = nx.readyAt - nx.startedAt;
  let out = '';
  try {
    const info = await nx.sh('xl info');
    const field = (k: string) => new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm').exec(info)?.[1] ?? '?';
    console.log(`hypervisor: Xen ${field('xen_version')} (${nx.dom0.xenPackage}), virt_caps ${field('virt_caps')}; dom0 kernel ${nx.dom0.dom0KernelRelease}`);
    for (let i = 1; i <= N_COLD; i++) await nx.put(`/run/nx-cold${i}.cfg`, pvhConfig(`nx-cold${i}`, MEMORY_MIB));
    await nx.put('/run/nx-tpl.cfg', pvhConfig('nx-tpl', MEMORY_MIB));
    for (let i = 1; i <= N_RESTORES; i++) await nx.put(`/run/nx-r${i}.cfg`, pvhConfig(`nx-r${i}`, MEMORY_MIB));
    await nx.put('/run/nx-bench.sh', dom0Script(), 0o755);
    // In the background, its output to a file this polls: each step is printed as it ends.
    await nx.sh(`(/run/nx-bench.sh ${N_COLD} ${N_RESTORES} >/run/nx-bench.out 2>&1; echo "nx-bench exit $?" >>/run/nx-bench.out) </dev/null >/dev/null 2>&1 &`);
    const end = Date.now() + 50 * 60_000;
    let shown = 0;
    for (;;) {
      out = await nx.sh('cat /run/nx-bench.out');
      const lines = out.split('\n').filter(Boolean);
      for (const l of lines.slice(shown)) if (!l.startsWith('nx-bench mem') && !l.startsWith('nx-bench xl')) console.log(`  dom0: ${l}`);
      shown = lines.length;
      const exit = /^nx-bench exit (\d+)$/m.exec(out);
      if (exit) {
        if (exit[1] !== '0') {
          const diag = await nx.sh('xl list; for f in /var/log/xen/console/guest-*.log; do echo "== $f"; tail -5 "$f"; done').catch((e: Error) => e.message);
          throw new Error(`the dom0 benchmark failed (exit ${exit[1]}):\n${out}\n${diag}`);
        }
        break;
      }
      if (Date.now() > end) throw new Error(`the dom0 benchmark did not end within 50 minutes:\n${out}`);
      await new Promise((r) => setTimeout(r, 5000));
    }
  } finally {
    await nx.close();
  }

  const rows = out.split('\n').filter((l) => l.startsWith('nx-bench ')).map((l) => l.slice('nx-bench '.length).split(/\s+/));
  const cold = rows.filter((r) => r[0] === 'cold').map((r) => ({ domid: Number(r[2]), createMs: Number(r[3]), readyMs: Number(r[4]) }));
  const restores = rows.filter((r) => r[0] === 'restore').map((r) => ({ domid: Number(r[2]), restoreMs: Number(r[3]), readyMs: Number(r[4]) }));
  const tpl = rows.find((r) => r[0] === 'template');
  const mem: Mem[] = rows.filter((r) => r[0] === 'mem').map((r) => ({ domid: Number(r[1]), name: r[2], tot: Number(r[3]), shr: Number(r[4]), max: Number(r[5]) }));
  const free = rows.find((r) => r[0] === 'free_mib')?.[1] ?? '?';
  const memOf = (ids: number[]) => mem.filter((m) => ids.includes(m.domid));
  const coldMem = memOf(cold.map((c) => c.domid));
  const restMem = memOf(restores.map((c) => c.domid));
  const dom0 = mem.find((m) => m.domid === 0);

  const coldMs = median(cold.map((c) => c.readyMs));
  const restoreMs = median(restores.map((c) => c.readyMs));
  const timing: [string, string][] = [
    [`cold boot to ready (xl create + boot + vchan answer; median of ${cold.length})`, `${coldMs} ms (xl create returned after ${median(cold.map((c) => c.createMs))} ms)`],
    ['template: boot to up / xl save / saved image', tpl ? `${tpl[1]} ms / ${tpl[2]} ms / ${(Number(tpl[3]) / 1048576).toFixed(1)} MiB` : '?'],
    [`restore to ready (xl restore -p + unpause + vchan answer; median of ${restores.length})`, `${restoreMs} ms (xl restore -p returned after ${median(restores.map((c) => c.restoreMs))} ms)`],
    ['  speed-up over cold boot', `${(coldMs / restoreMs).toFixed(1)}x`],
    ['nested Xen boot (QEMU start to dom0 agent answering)', `${(bootMs / 1000).toFixed(1)} s`],
  ];
  const medTot = (ms: Mem[]) => median(ms.map((m) => m.tot));
  const memory: [string, string][] = [
    [`tot_pages per cold-booted guest (median of ${coldMem.length}; guest RAM ${MEMORY_MIB} MiB)`, `${medTot(coldMem)} pages = ${mib(medTot(coldMem))} MiB (shared ${median(coldMem.map((m) => m.shr))} pages)`],
    [`tot_pages per restored guest (median of ${restMem.length})`, `${medTot(restMem)} pages = ${mib(medTot(restMem))} MiB (shared ${median(restMem.map((m) => m.shr))} pages)`],
    ['  restored / cold', `${(medTot(restMem) / medTot(coldMem)).toFixed(2)}`],
    ['  private memory per restored guest, of its RAM', `${((100 * (medTot(restMem) - median(restMem.map((m) => m.shr)))) / ((MEMORY_MIB * 1048576) / 4096)).toFixed(0)}% (no memory sharing on this hypervisor: every page is the guest's own)`],
    [`all ${coldMem.length + restMem.length} guests together`, `${mib(coldMem.reduce((s, m) => s + m.tot, 0) + restMem.reduce((s, m) => s + m.tot, 0))} MiB; free in the hypervisor after: ${free} MiB`],
    ['dom0', dom0 ? `${mib(dom0.tot)} MiB` : '?'],
  ];
  const w = Math.max(...[...timing, ...memory].map((r) => r[0].length));
  const table = (title: string, rs: [string, string][]) => {
    console.log(`\n${title.padEnd(w)}  value`);
    console.log(`${'-'.repeat(w)}  ${'-'.repeat(20)}`);
    for (const [k, v] of rs) console.log(`${k.padEnd(w)}  ${v}`);
  };
  table('time to ready (the guest answered on its vchan), nested Xen under QEMU TCG', timing);
  table('memory from the hypervisor (xc_domain_getinfolist: tot_pages, shr_pages; 4 KiB pages)', memory);
  console.log(`
Times are measured in dom0 (/proc/uptime, 10 ms steps), so the host's control
path is not in them. Under TCG every guest instruction is emulated, twice over
for a guest of a guest: the absolute figures are far from a real host's, the
ratio between the two paths is what carries over.`);
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`\nhost: ${os.cpus().length} cpus, load average ${load}; whole run ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
