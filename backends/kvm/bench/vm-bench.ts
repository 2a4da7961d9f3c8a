// Benchmark of the VM substrate (run: node scripts/run-ts.mjs backends/kvm/bench/vm-bench.ts).
//
// Measures, for one image and a 128 MiB guest:
// - cold boot to the agent's ready line,
// - copy-on-write fork (template RAM file + device state) to ready,
// - QEMU's own full-RAM snapshot restore (migrate to a file, -incoming from it) to ready,
// - memory of N idle clones (private per clone, total PSS) against M cold-booted guests.
//
// Options: --clones N (default 32), --cold M (default 8; cold boots run in
// parallel and their memory is extrapolated to N), --forks K (default 10), --memory MiB (default 128).

import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { buildImage, ControlChannel, ensureTemplate, forkClone, probeAccelerator, QmpClient, readCpuMs, readMappingPrivate, readMemory, type Clone, type Template } from '../src/vm/index';
import { qemuArgs, requireQemu, shQuote } from '../src/vm/qemu';
import { layoutOf } from '../src/vm/template';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const N_CLONES = arg('clones', 32);
const N_COLD = arg('cold', 8);
const N_FORKS = arg('forks', 10);
const MEMORY = arg('memory', 128) * 1024 * 1024;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p90 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.9))];
const mib = (b: number) => (b / 1048576).toFixed(1);

interface Guest {
  pid: number;
  proc: ResultPromise;
  control: ControlChannel;
  qmp: QmpClient;
  readyMs: number;
}

/**
 * Boots a guest like a template would, but with anonymous RAM (memory-backend-ram),
 * and waits for the agent's ready line. Used for cold boots and full-RAM snapshots.
 */
async function coldGuest(template: Template, dir: string, name: string, incoming?: string): Promise<Guest> {
  const args = qemuArgs(layoutOf(template), {
    name,
    shareMemory: false,
    controlSocket: path.join(dir, `${name}.ctl`),
    dataPortSockets: [],
    logFile: path.join(dir, `${name}.log`),
    qmpSocket: path.join(dir, `${name}.qmp`),
    incomingStatePath: incoming,
  });
  const i = args.findIndex((a) => a.startsWith('memory-backend-file'));
  args[i] = `memory-backend-ram,id=mem,size=${MEMORY / 1048576}M`;
  const start = Date.now();
  const proc = execa(requireQemu(), args, { reject: false, stdin: 'ignore', stdout: 'ignore', stderr: 'inherit' });
  try {
    return await bootGuest(proc, dir, name, start, incoming);
  } catch (err) {
    proc.kill('SIGKILL');
    const r = await proc;
    const log = await readFile(path.join(dir, `${name}.log`), 'utf8').catch(() => '');
    throw new Error(`guest ${name} (${r.signal ?? `exit ${r.exitCode}`}): ${(err as Error).message}\n${log.split('\n').slice(-12).join('\n')}`);
  }
}

async function bootGuest(proc: ResultPromise, dir: string, name: string, start: number, incoming?: string): Promise<Guest> {
  const qmp = await QmpClient.connect(path.join(dir, `${name}.qmp`), { timeoutMs: 30_000 });
  const control = await ControlChannel.connect(path.join(dir, `${name}.ctl`), 30_000);
  if (incoming) {
    await qmp.execute('migrate-incoming', { uri: `exec:cat ${shQuote(incoming)}` });
    for (;;) {
      const st = await qmp.execute<{ status?: string }>('query-migrate');
      if (st.status === 'completed') break;
      if (st.status === 'failed') throw new Error('full-RAM restore failed');
      await new Promise((r) => setTimeout(r, 2));
    }
    await qmp.execute('cont');
  } else {
    await control.waitFor((w) => w[0] === 'ready' && w[1] === 'boot', 180_000, 'boot');
  }
  await control.handshake(60_000);
  return { pid: proc.pid!, proc, control, qmp, readyMs: Date.now() - start };
}

async function killGuest(g: Guest): Promise<void> {
  g.control.close();
  g.qmp.close();
  g.proc.kill('SIGKILL');
  await g.proc;
}

async function main() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mcl-bench-'));
  const accel = await probeAccelerator();
  console.log(`accelerator: ${accel.accel} (${accel.reason})`);
  const image = await buildImage({ name: 'busybox', kernel: 'debian-cloud', modules: ['virtio_console'], files: [] });
  const template = await ensureTemplate({ id: `bench-${MEMORY / 1048576}m-1c-1p`, image, memoryBytes: MEMORY, vcpus: 1, portSlots: 1 });
  console.log(`template ${template.id}: ${template.cached ? 'cached' : 'built'} (cold boot ${template.bootMs} ms, state saved in ${template.saveMs} ms)`);
  const rows: [string, string][] = [];
  try {
    // Cold boots, one at a time, for the boot time.
    const coldTimes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const g = await coldGuest(template, dir, `cold-t${i}`);
      coldTimes.push(g.readyMs);
      await killGuest(g);
    }

    // Forks to ready, one at a time.
    const forkTimes: number[] = [];
    const phases: Clone['phases'][] = [];
    for (let i = 0; i < N_FORKS; i++) {
      const c = await forkClone(template, { name: `f${i}`, controlSocket: path.join(dir, `f${i}.ctl`), dataPortSockets: [], logFile: path.join(dir, `f${i}.log`) });
      forkTimes.push(c.readyMs);
      phases.push(c.phases);
      await c.kill();
    }

    // QEMU's full-RAM snapshot: migrate a booted guest to a file, restore it with -incoming.
    const src = await coldGuest(template, dir, 'snap-src');
    await src.qmp.execute('stop');
    const full = path.join(dir, 'full.state');
    await src.qmp.execute('migrate', { uri: `exec:cat > ${shQuote(full)}` });
    for (;;) {
      const st = await src.qmp.execute<{ status?: string }>('query-migrate');
      if (st.status === 'completed') break;
      await new Promise((r) => setTimeout(r, 5));
    }
    await killGuest(src);
    const fullSize = (await stat(full)).size;
    const restoreTimes: number[] = [];
    const restoredPrivate: number[] = [];
    for (let i = 0; i < 5; i++) {
      const g = await coldGuest(template, dir, `snap${i}`, full);
      restoreTimes.push(g.readyMs);
      restoredPrivate.push((await readMemory(g.pid)).private);
      await killGuest(g);
    }

    rows.push(['cold boot to ready (median of 3)', `${median(coldTimes)} ms`]);
    rows.push([`fork to ready (median / p90 of ${N_FORKS})`, `${median(forkTimes)} / ${p90(forkTimes)} ms`]);
    rows.push([
      '  QEMU start / state load + cont / handshake (medians)',
      `${median(phases.map((p) => p.connectMs))} / ${median(phases.map((p) => p.loadMs))} / ${median(phases.map((p) => p.handshakeMs))} ms`,
    ]);
    rows.push(['fork speed-up over cold boot', `${(median(coldTimes) / median(forkTimes)).toFixed(1)}x`]);
    rows.push([`full-RAM snapshot restore to ready (median of 5, state ${mib(fullSize)} MiB)`, `${median(restoreTimes)} ms`]);
    rows.push(['  private memory per restored guest (median)', `${mib(median(restoredPrivate))} MiB`]);
    rows.push(['template device state', `${mib((await stat(template.statePath)).size)} MiB`]);

    // N idle clones.
    const clones: Clone[] = [];
    for (let i = 0; i < N_CLONES; i++) {
      clones.push(await forkClone(template, { name: `m${i}`, controlSocket: path.join(dir, `m${i}.ctl`), dataPortSockets: [], logFile: path.join(dir, `m${i}.log`), readyTimeoutMs: 60_000 }));
    }
    await Promise.all(clones.map((c) => c.control.ping(30_000)));
    await new Promise((r) => setTimeout(r, 3_000));
    const cpu0 = await Promise.all(clones.map((c) => readCpuMs(c.pid)));
    const window = Date.now();
    await new Promise((r) => setTimeout(r, 5_000));
    const cpu1 = await Promise.all(clones.map((c) => readCpuMs(c.pid)));
    const idleCpu = (100 * cpu1.reduce((s, x, i) => s + x - cpu0[i], 0)) / (Date.now() - window) / N_CLONES;
    const mem = await Promise.all(clones.map((c) => c.memory()));
    const cow = await Promise.all(clones.map((c) => readMappingPrivate(c.pid, template.memPath)));
    const tmpfsBytes = Number((await execa('du', ['-B1', template.memPath])).stdout.split('\t')[0]);
    const clonePss = mem.reduce((s, m) => s + m.pss, 0);
    const clonePrivate = mem.map((m) => m.private);
    await Promise.all(clones.map((c) => c.kill()));

    // M cold-booted guests in parallel.
    const cold = await Promise.all(Array.from({ length: N_COLD }, (_, i) => coldGuest(template, dir, `cm${i}`)));
    await new Promise((r) => setTimeout(r, 3_000));
    const coldMem = await Promise.all(cold.map((g) => readMemory(g.pid)));
    await Promise.all(cold.map(killGuest));
    const coldPss = coldMem.reduce((s, m) => s + m.pss, 0);
    const coldPerGuest = coldPss / N_COLD;

    rows.push([`private memory per idle clone (median, guest RAM ${mib(MEMORY)} MiB)`, `${mib(median(clonePrivate))} MiB (${((100 * median(clonePrivate)) / MEMORY).toFixed(1)}% of guest RAM)`]);
    rows.push([`  of which guest RAM copied on write (median)`, `${mib(median(cow))} MiB (${((100 * median(cow)) / MEMORY).toFixed(1)}% of guest RAM; the rest is QEMU itself)`]);
    rows.push([`CPU per idle clone (mean over 5 s)`, `${idleCpu.toFixed(1)}% of one core`]);
    rows.push([`RSS per idle clone (median)`, `${mib(median(mem.map((m) => m.rss)))} MiB`]);
    rows.push([`total host memory, ${N_CLONES} clones (sum of PSS)`, `${mib(clonePss)} MiB (template RAM file holds ${mib(tmpfsBytes)} MiB on tmpfs)`]);
    rows.push([`PSS per cold-booted guest (${N_COLD} booted in parallel)`, `${mib(coldPerGuest)} MiB`]);
    rows.push([
      `total host memory, ${N_CLONES} cold-booted guests${N_COLD < N_CLONES ? ` (extrapolated from ${N_COLD})` : ''}`,
      `${mib(coldPerGuest * N_CLONES)} MiB`,
    ]);
    rows.push(['memory saved by forking', `${(100 * (1 - clonePss / (coldPerGuest * N_CLONES))).toFixed(0)}%`]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const w = Math.max(...rows.map((r) => r[0].length));
  console.log('');
  console.log(`${'measure'.padEnd(w)}  value`);
  console.log(`${'-'.repeat(w)}  ${'-'.repeat(20)}`);
  for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
  const load = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
  console.log(`\nhost: ${os.cpus().length} cpus, load average ${load}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
