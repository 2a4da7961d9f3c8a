// Benchmark of the VM substrate (run: npm run bench:vm, or node scripts/run-ts.mjs backends/kvm/bench/vm-bench.ts).
//
// Measures, for one image and a 128 MiB guest, in one run:
// - cold boot to the agent answering, and the fork of a template clone to the same point, both
//   with QEMU started for the fork (forkClone) and with QEMU started ahead of time (ClonePool.take);
// - the two restores QEMU itself offers, to the same point: savevm/loadvm (an internal
//   snapshot in a qcow2 image, restored with -loadvm) and migrate-to-file (restored with
//   -incoming);
// - mcl's own checkpoint of an idle clone (device state and the pages that differ from the
//   template; spec/checkpoint.md): its size on disk, the restore to ready, and the pause of a
//   deployment of 6 components (3 counters, 3 stores, through the broker) during `mclc checkpoint`;
// - for pooled forks, the identity and program applied after the handshake (to the agent's answer), and
//   under TCG where the translated guest code comes from (kernel or user space, QEMU's in_asm log);
// - memory of N idle clones, first as forked (handshake only) and then as the lifecycle
//   leaves them (identity applied, a program started and waiting), against M guests
//   cold-booted and given the same identity and program.
//
// Options: --clones N (default 32), --cold M (default 32; boots are staggered, at most
// --boot-parallel P at a time, default 4), --forks K (default 10), --restores R (default 5),
// --memory MiB (default 128), --direct D (default 8: clones with QEMU started directly, for comparison
// with the zygote's).
//
// Clones are started the way the backend starts them (launchCommand: transparent huge pages
// off where perl can turn them off). Cold-booted guests and QEMU's own restores stand for
// what a user would run without mcl: plain QEMU, THP as the host has it, anonymous RAM
// (memory-backend-ram) instead of the template's RAM file, the template's devices.
//
// With MCL_QEMU_KSM=1 and ksmd running (/sys/kernel/mm/ksm/run = 1), clones offer their
// own memory to KSM (see qemu.ts): each memory measurement of the clones then waits for
// two full ksmd scans after the clones reached that state (at most 10 minutes), and the
// table adds what merged and what ksmd cost. Raise /sys/kernel/mm/ksm/pages_to_scan to
// shorten the wait. Cold-booted guests never get the setting.

import { createReadStream, existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { execa, type ResultPromise } from 'execa';
import { captureRam, parseRamFile, restoreClone, saveDeviceState, writeRamFile } from '../src/vm/checkpoint';
import { buildImage, ClonePool, ControlChannel, ensureTemplate, forkClone, probeAccelerator, QmpClient, readCpuMs, readMemory, type Clone, type GuestIdentity, type MemoryUsage, type Template } from '../src/vm/index';
import { readKsmHost } from '../src/vm/doctor';
import { readKsmUsage, readMemoryBreakdown, type KsmUsage, type MemoryBreakdown } from '../src/vm/memory';
import { launchCommand, launchHost, qemuArgs, requireQemu, shQuote } from '../src/vm/qemu';
import { layoutOf } from '../src/vm/template';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const N_CLONES = arg('clones', 32);
const N_COLD = arg('cold', 32);
const BOOT_PARALLEL = arg('boot-parallel', 4);
const N_FORKS = arg('forks', 10);
const N_DIRECT = arg('direct', 8);
const N_RESTORES = arg('restores', 5);
const MEMORY = arg('memory', 128) * 1024 * 1024;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p90 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.9))];
const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);
const mib = (b: number) => (b / 1048576).toFixed(1);
const pct = (b: number) => `${((100 * b) / MEMORY).toFixed(1)}%`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The program every idle guest runs once it has its identity: it starts and then waits. */
const IDLE_PROGRAM = { argv: ['/bin/sh', '-c', 'exec sleep 2147483647'], env: {}, files: [] };
const identity = (i: number): GuestIdentity => ({ instanceId: 'bench.idle', clone: i, ports: [], program: IDLE_PROGRAM });

interface Guest {
  pid: number;
  proc: ResultPromise;
  control: ControlChannel;
  qmp: QmpClient;
  readyMs: number;
  /** QEMU's CPU time (user + system) when the agent first answered. */
  cpuMs: number;
}

interface GuestOptions {
  /** Restore from a migration stream in this file (-incoming), then cont. */
  incoming?: string;
  /** A qcow2 image attached as a drive no device uses, to hold internal snapshots. */
  vmstateImage?: string;
  /** Start from this internal snapshot of vmstateImage (-loadvm). */
  loadvm?: string;
}

/**
 * Starts a guest with the template's machine and devices but anonymous RAM
 * (memory-backend-ram) and waits until its agent answers a hello: after the
 * boot's ready line for a cold boot, after the restore for the other kinds.
 */
async function startGuest(template: Template, dir: string, name: string, o: GuestOptions = {}): Promise<Guest> {
  const args = qemuArgs(layoutOf(template), {
    name,
    shareMemory: false,
    controlSocket: path.join(dir, `${name}.ctl`),
    dataPortSockets: [],
    logFile: path.join(dir, `${name}.log`),
    qmpSocket: path.join(dir, `${name}.qmp`),
    incomingStatePath: o.incoming,
  });
  const i = args.findIndex((a) => a.startsWith('memory-backend-file'));
  args[i] = `memory-backend-ram,id=mem,size=${MEMORY / 1048576}M`;
  if (o.vmstateImage) args.push('-drive', `if=none,id=vmstate,format=qcow2,file=${o.vmstateImage}`);
  if (o.loadvm) args.push('-loadvm', o.loadvm);
  const launch = launchCommand(requireQemu(), args, { ...launchHost(), keepThp: true, ksm: false });
  const start = Date.now();
  const proc = execa(launch.file, launch.args, { reject: false, stdin: 'ignore', stdout: 'ignore', stderr: 'inherit' });
  try {
    const qmp = await QmpClient.connect(path.join(dir, `${name}.qmp`), { timeoutMs: 60_000 });
    const control = await ControlChannel.connect(path.join(dir, `${name}.ctl`), 60_000);
    if (o.incoming) {
      await qmp.execute('migrate-incoming', { uri: `exec:cat ${shQuote(o.incoming)}` });
      for (;;) {
        const st = await qmp.execute<{ status?: string }>('query-migrate');
        if (st.status === 'completed') break;
        if (st.status === 'failed') throw new Error('restore from the migration file failed');
        await sleep(2);
      }
      await qmp.execute('cont');
    } else if (!o.loadvm) {
      await control.waitFor((w) => w[0] === 'ready' && w[1] === 'boot', 240_000, 'boot');
    }
    await control.handshake(120_000);
    const readyMs = Date.now() - start;
    return { pid: proc.pid!, proc, control, qmp, readyMs, cpuMs: await readCpuMs(proc.pid!) };
  } catch (err) {
    proc.kill('SIGKILL');
    const r = await proc;
    const log = await readFile(path.join(dir, `${name}.log`), 'utf8').catch(() => '');
    throw new Error(`guest ${name} (${r.signal ?? `exit ${r.exitCode}`}): ${(err as Error).message}\n${log.split('\n').slice(-12).join('\n')}`);
  }
}

async function killGuest(g: Guest): Promise<void> {
  g.control.close();
  g.qmp.close();
  g.proc.kill('SIGKILL');
  await g.proc;
}

/** Runs `fn` over 0..n-1 with at most `parallel` calls in flight. */
async function pool<T>(n: number, parallel: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, n) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

/**
 * Proportional share of the tmpfs pages of `file` that a process maps: the PSS
 * of its mappings of the file less their anonymous pages (the pages it copied on
 * write, which only it maps). Per-mapping smaps has no Pss_Shmem field.
 */
async function filePss(pid: number, file: string): Promise<number> {
  const text = await readFile(`/proc/${pid}/smaps`, 'utf8');
  let total = 0;
  for (const block of text.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const header = block.slice(0, block.indexOf('\n'));
    if (!header.endsWith(` ${file}`) && !header.endsWith(` ${file} (deleted)`)) continue;
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(block)?.[1] ?? 0);
    total += (kb('Pss') - kb('Anonymous')) * 1024;
  }
  return total;
}

/** CPU use of processes over `ms`, in percent of one core per process. */
async function cpuPercent(pids: number[], ms: number): Promise<number> {
  const a = await Promise.all(pids.map(readCpuMs));
  const t = Date.now();
  await sleep(ms);
  const b = await Promise.all(pids.map(readCpuMs));
  return (100 * sum(b.map((x, i) => x - a[i]))) / (Date.now() - t) / pids.length;
}

/** What TCG translated in a guest so far (`info jit`): blocks and bytes of host code. */
interface Jit {
  tbs: number;
  codeBytes: number;
}

async function translated(qmp: QmpClient): Promise<Jit> {
  const text = await qmp.execute<string>('human-monitor-command', { 'command-line': 'info jit' });
  const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  return { tbs: num(/TB count\s+(\d+)/), codeBytes: num(/gen code size\s+(\d+)/) };
}

/** Blocks TCG translated over a stretch of a guest's run, from QEMU's `in_asm` log: in the guest kernel and in user space. */
interface TranslationProfile {
  kernel: number;
  user: number;
  /** Kernel blocks translated before the first user-space block: the wake-up up to the return into the agent. */
  beforeUser: number;
}

/** Counts the blocks of an `in_asm` log, read line by line (it is the benchmark's own file, a few MiB). */
async function readTranslationLog(file: string): Promise<TranslationProfile> {
  const out: TranslationProfile = { kernel: 0, user: 0, beforeUser: 0 };
  let header = false;
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    if (line.startsWith('IN:')) {
      header = true;
      continue;
    }
    if (!header) continue;
    header = false;
    // x86-64 Linux maps its kernel in the upper half: 0xffff8000_00000000 and above.
    const addr = /^0x([0-9a-f]+):/.exec(line)?.[1];
    if (!addr) continue;
    if (addr.length === 16 && addr.startsWith('ffff')) {
      out.kernel++;
      if (out.user === 0) out.beforeUser++;
    } else out.user++;
  }
  return out;
}

/**
 * Where the translation of a fork's first run goes: one clone forked paused, QEMU's `in_asm` log on while it
 * continues and answers the handshake, then while it applies an identity and starts a program. Logging
 * slows the clone, so it is not timed.
 */
async function profileTranslation(template: Template, dir: string): Promise<{ handshake: TranslationProfile; identity: TranslationProfile }> {
  const c = await forkClone(template, { name: 'prof', paused: true, controlSocket: path.join(dir, 'prof.ctl'), dataPortSockets: [], logFile: path.join(dir, 'prof.log'), readyTimeoutMs: 60_000 });
  const hmp = (line: string) => c.qmp.execute('human-monitor-command', { 'command-line': line });
  try {
    const logged = async (name: string, fn: () => Promise<unknown>) => {
      const file = path.join(dir, name);
      await hmp(`logfile ${file}`);
      await hmp('log in_asm');
      await fn();
      await hmp('log none');
      const p = await readTranslationLog(file);
      await rm(file, { force: true });
      return p;
    };
    const handshake = await logged('prof-handshake.tcg', () => c.resume());
    const identityProfile = await logged('prof-identity.tcg', () => c.sendIdentity(identity(0), 60_000));
    return { handshake, identity: identityProfile };
  } finally {
    await c.kill();
  }
}

interface CloneMemory {
  rollup: MemoryUsage[];
  parts: MemoryBreakdown[];
  ksm: KsmUsage[];
  /** Sum of PSS, with the template RAM file counted whole (its tmpfs pages) instead of the clones' shares of it. */
  hostBytes: number;
}

async function cloneMemory(clones: Clone[], template: Template, tmpfsBytes: number): Promise<CloneMemory> {
  const rollup = await Promise.all(clones.map((c) => c.memory()));
  const parts = await Promise.all(clones.map((c) => readMemoryBreakdown(c.pid, template.memPath)));
  const shares = await Promise.all(clones.map((c) => filePss(c.pid, template.memPath)));
  const ksm = await Promise.all(clones.map((c) => readKsmUsage(c.pid)));
  return { rollup, parts, ksm, hostBytes: sum(rollup.map((m) => m.pss)) - sum(shares) + tmpfsBytes };
}

const KSM_DIR = '/sys/kernel/mm/ksm';
const ksmValue = async (f: string) => Number((await readFile(`${KSM_DIR}/${f}`, 'utf8')).trim());

/** CPU time of the ksmd kernel thread in ms, or 0 when there is none. */
async function ksmdCpuMs(): Promise<number> {
  const { stdout } = await execa('pgrep', ['-x', 'ksmd'], { reject: false });
  const pid = Number(stdout.split('\n')[0]);
  return pid > 0 ? readCpuMs(pid) : 0;
}

interface KsmWait {
  ms: number;
  ksmdCpuMs: number;
}

/** Waits until ksmd has finished two full scans from now (pages merge on the second look), at most 10 minutes. */
async function ksmSettle(): Promise<KsmWait> {
  const scans = await ksmValue('full_scans');
  const cpu = await ksmdCpuMs();
  const start = Date.now();
  while ((await ksmValue('full_scans')) < scans + 2 && Date.now() - start < 600_000) await sleep(250);
  return { ms: Date.now() - start, ksmdCpuMs: (await ksmdCpuMs()) - cpu };
}

function breakdownRows(rows: [string, string][], m: CloneMemory): void {
  const med = (k: keyof MemoryBreakdown) => median(m.parts.map((p) => p[k]));
  rows.push([`  guest RAM copied on write`, `${mib(med('guestRam'))} MiB`]);
  rows.push([`  TCG translated code`, `${mib(med('tcgCode'))} MiB`]);
  rows.push([`  malloc heap`, `${mib(med('heap'))} MiB`]);
  rows.push([`  QEMU and library data (relocated at load)`, `${mib(med('binaries'))} MiB`]);
  rows.push([`  other (ROMs, TB hash table, thread arenas, stacks)`, `${mib(med('other'))} MiB`]);
}

async function main() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mcl-bench-'));
  const accel = await probeAccelerator();
  console.log(`accelerator: ${accel.accel} (${accel.reason})`);
  const host = launchHost();
  const thpOff = launchCommand('qemu', [], host).thpOff;
  console.log(`transparent huge pages: host mode ${host.thpMode ?? 'none'}; clones run with them ${thpOff ? 'off' : 'as the host has them'}, cold-booted and restored guests as the host has them`);
  const image = await buildImage({ name: 'busybox', kernel: 'debian-cloud', modules: ['virtio_console'], files: [] });
  const template = await ensureTemplate({ id: `bench-${MEMORY / 1048576}m-1c-1p`, image, memoryBytes: MEMORY, vcpus: 1, portSlots: 1 });
  console.log(`template ${template.id}: ${template.cached ? 'cached' : 'built'} (cold boot ${template.bootMs} ms, state saved in ${template.saveMs} ms)`);
  const timing: [string, string][] = [];
  const memory: [string, string][] = [];
  const targets: [string, string][] = [];
  const live: { clones: Clone[]; guests: Guest[]; pools: ClonePool[] } = { clones: [], guests: [], pools: [] };
  try {
    // Cold boots, one at a time.
    const cold: Guest[] = [];
    for (let i = 0; i < 3; i++) {
      const g = await startGuest(template, dir, `cold-t${i}`);
      cold.push(g);
      await killGuest(g);
    }

    // Forks, one at a time: QEMU started for the fork, then QEMU started ahead of time (a pool of one, refilled
    // between forks so the refill never runs during a measured fork). Pooled CPU is what QEMU spent from the take.
    const forks: { readyMs: number; cpuMs: number; phases: Clone['phases'] }[] = [];
    for (let i = 0; i < N_FORKS; i++) {
      const c = await forkClone(template, { name: `f${i}`, controlSocket: path.join(dir, `f${i}.ctl`), dataPortSockets: [], logFile: path.join(dir, `f${i}.log`) });
      forks.push({ readyMs: c.readyMs, cpuMs: await readCpuMs(c.pid), phases: c.phases });
      await c.kill();
    }
    const pooled: { readyMs: number; cpuMs: number; phases: Clone['phases'] }[] = [];
    const pooledJit: Jit[] = [];
    const deployedReady: { ms: number; cpuMs: number; jit: Jit | null }[] = [];
    let spare: { mem: MemoryUsage; cpuPct: number } | undefined;
    const clonePool = new ClonePool(template, { dir: path.join(dir, 'pool'), size: 1, onError: (e) => console.error(`pool: ${e.message}`) });
    try {
      for (let i = 0; i < N_FORKS; i++) {
        await clonePool.fill();
        const waiting = clonePool.pids()[0];
        if (waiting === undefined) throw new Error('the pool could not start a QEMU process');
        const cpuBefore = await readCpuMs(waiting);
        const c = await clonePool.take({ name: `g${i}`, controlSocket: path.join(dir, `g${i}.ctl`), dataPortSockets: [], logFile: path.join(dir, `g${i}.log`) });
        if (!c.pooled) throw new Error('the pool had no process waiting');
        pooled.push({ readyMs: c.readyMs, cpuMs: (await readCpuMs(c.pid)) - cpuBefore, phases: c.phases });
        if (accel.accel === 'tcg') pooledJit.push(await translated(c.qmp));
        // Then the identity and a program, as the lifecycle applies them: ready to serve once the agent answered `started`.
        const cpuReady = await readCpuMs(c.pid);
        const t0 = Date.now();
        await c.sendIdentity(identity(i), 60_000);
        deployedReady.push({ ms: Date.now() - t0, cpuMs: (await readCpuMs(c.pid)) - cpuReady, jit: accel.accel === 'tcg' ? await translated(c.qmp) : null });
        await c.kill();
      }
      // What a waiting process costs: memory, and CPU while it waits (after its start has settled).
      await clonePool.fill();
      await sleep(1_000);
      const [waiting] = clonePool.pids();
      spare = { mem: await readMemory(waiting), cpuPct: await cpuPercent([waiting], 5_000) };
    } finally {
      await clonePool.close();
    }
    const profile = accel.accel === 'tcg' ? await profileTranslation(template, dir) : null;
    // Forks from the zygote with nothing waiting (a pool of size 0): the zygote forks QEMU's process at the
    // take. The first take starts the zygote and is not counted.
    const zygoteForks: { readyMs: number; cpuMs: number; phases: Clone['phases'] }[] = [];
    const zygotePool = new ClonePool(template, { dir: path.join(dir, 'zpool'), size: 0, onError: (e) => console.error(`pool: ${e.message}`) });
    try {
      for (let i = 0; i <= N_FORKS; i++) {
        const c = await zygotePool.take({ name: `z${i}`, controlSocket: path.join(dir, `z${i}.ctl`), dataPortSockets: [], logFile: path.join(dir, `z${i}.log`) });
        const cpuMs = await readCpuMs(c.pid);
        await c.kill();
        if (!c.pooled) break;
        if (i > 0) zygoteForks.push({ readyMs: c.readyMs, cpuMs, phases: c.phases });
      }
    } finally {
      await zygotePool.close();
    }

    // QEMU's savevm/loadvm: an internal snapshot of a cold-booted guest in a qcow2 image no device uses.
    const qcow2 = path.join(dir, 'vmstate.qcow2');
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', qcow2, '16M']);
    const snapSrc = await startGuest(template, dir, 'savevm-src', { vmstateImage: qcow2 });
    const saveStart = Date.now();
    const saveOut = await snapSrc.qmp.execute<string>('human-monitor-command', { 'command-line': 'savevm mcl' }, 120_000);
    const savevmMs = Date.now() - saveStart;
    if (saveOut.trim()) throw new Error(`savevm: ${saveOut.trim()}`);
    // A clean quit, so the image is closed properly before another QEMU opens it.
    await snapSrc.qmp.execute('quit').catch(() => undefined);
    await snapSrc.proc;
    snapSrc.control.close();
    const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', qcow2])).stdout) as { snapshots?: { 'vm-state-size'?: number }[] };
    const vmstateBytes = info.snapshots?.[0]?.['vm-state-size'] ?? 0;
    const loadvm: { readyMs: number; priv: number }[] = [];
    for (let i = 0; i < N_RESTORES; i++) {
      const g = await startGuest(template, dir, `loadvm${i}`, { vmstateImage: qcow2, loadvm: 'mcl' });
      loadvm.push({ readyMs: g.readyMs, priv: (await readMemory(g.pid)).private });
      await g.qmp.execute('quit').catch(() => undefined);
      await g.proc;
      g.control.close();
    }

    // QEMU's migration to a file (all RAM and device state), restored with -incoming.
    const src = await startGuest(template, dir, 'migrate-src');
    await src.qmp.execute('stop');
    const full = path.join(dir, 'full.state');
    await src.qmp.execute('migrate', { uri: `exec:cat > ${shQuote(full)}` });
    for (;;) {
      const st = await src.qmp.execute<{ status?: string }>('query-migrate');
      if (st.status === 'completed') break;
      if (st.status === 'failed') throw new Error('migration to a file failed');
      await sleep(5);
    }
    await killGuest(src);
    const fullBytes = (await stat(full)).size;
    const incoming: { readyMs: number; cpuMs: number; priv: number }[] = [];
    for (let i = 0; i < N_RESTORES; i++) {
      const g = await startGuest(template, dir, `incoming${i}`, { incoming: full });
      incoming.push({ readyMs: g.readyMs, cpuMs: g.cpuMs, priv: (await readMemory(g.pid)).private });
      await killGuest(g);
    }

    // mcl checkpoints of an idle clone (identity applied, its program waiting), as the supervisor takes them:
    // stop, device state and the pages it wrote, cont; then restores to ready from them.
    const ckpts: { bytes: number; ramBytes: number; pages: number; pauseMs: number; dir: string }[] = [];
    for (let i = 0; i < N_RESTORES; i++) {
      const c = await forkClone(template, { name: `k${i}`, controlSocket: path.join(dir, `k${i}.ctl`), dataPortSockets: [], logFile: path.join(dir, `k${i}.log`) });
      await c.sendIdentity(identity(i));
      await sleep(1_000);
      const cdir = await mkdtemp(path.join(dir, 'ckpt-'));
      const t0 = Date.now();
      await c.qmp.execute('stop');
      const [ram] = await Promise.all([captureRam(c.pid, template), saveDeviceState(c.qmp, path.join(cdir, 'dev'))]);
      await c.qmp.execute('cont');
      const pauseMs = Date.now() - t0;
      const r = await writeRamFile(path.join(cdir, 'ram'), ram, template);
      const devBytes = (await stat(path.join(cdir, 'dev'))).size;
      ckpts.push({ bytes: r.bytes + devBytes, ramBytes: r.bytes, pages: r.pages, pauseMs, dir: cdir });
      await c.kill();
    }
    // Each restore is paired with a fork to ready (QEMU started for it, as a restore starts its QEMU) just
    // before it, so that the ratio compares the two under the same load of a shared host.
    const restores: number[] = [];
    const pairedForks: number[] = [];
    for (const [i, k] of ckpts.entries()) {
      const f = await forkClone(template, { name: `kf${i}`, controlSocket: path.join(dir, `kf${i}.ctl`), dataPortSockets: [], logFile: path.join(dir, `kf${i}.log`) });
      pairedForks.push(f.readyMs);
      await f.kill();
      const t0 = Date.now();
      const ram = await parseRamFile(await readFile(path.join(k.dir, 'ram')), 'ram', MEMORY / 4096);
      const c = await restoreClone(template, { name: `kr${i}`, controlSocket: path.join(dir, `kr${i}.ctl`), dataPortSockets: [], logFile: path.join(dir, `kr${i}.log`) }, path.join(k.dir, 'dev'), ram);
      await c.resume();
      restores.push(Date.now() - t0);
      await c.kill();
    }
    const deploymentPause = await deploymentCheckpointPause(dir);

    const coldMs = median(cold.map((g) => g.readyMs));
    const coldCpu = median(cold.map((g) => g.cpuMs));
    const forkMs = median(forks.map((f) => f.readyMs));
    const pooledMs = median(pooled.map((f) => f.readyMs));
    // CPU figures are in clock ticks (10 ms): a floor of one tick keeps a ratio finite.
    const speedUp = (ms: number, cpu: number) => `${(coldMs / ms).toFixed(1)}x / ${(coldCpu / Math.max(10, cpu)).toFixed(1)}x`;
    timing.push(['cold boot to ready (median of 3)', `${coldMs} ms (QEMU CPU ${coldCpu} ms)`]);
    timing.push([`fork to ready, pooled (QEMU started ahead; median / p90 of ${N_FORKS})`, `${pooledMs} / ${p90(pooled.map((f) => f.readyMs))} ms (QEMU CPU from the take ${median(pooled.map((f) => f.cpuMs))} ms)`]);
    timing.push([
      '  rename sockets and files / state load / cont + handshake (medians)',
      `${median(pooled.map((f) => f.phases.connectMs))} / ${median(pooled.map((f) => f.phases.loadMs))} / ${median(pooled.map((f) => f.phases.handshakeMs))} ms`,
    ]);
    timing.push(['  speed-up over cold boot (wall / QEMU CPU)', speedUp(pooledMs, median(pooled.map((f) => f.cpuMs)))]);
    if (pooledJit.length > 0) {
      // Under TCG, waking the guest means translating its wake-up and reply path anew in each process: most of cont + handshake.
      timing.push([
        '  TCG translation done by then, fresh in each clone (median)',
        `${median(pooledJit.map((j) => j.tbs))} blocks, ${mib(median(pooledJit.map((j) => j.codeBytes)))} MiB of host code`,
      ]);
    }
    if (profile) {
      const h = profile.handshake;
      timing.push([
        '  where those blocks are (one clone, in_asm log): guest kernel / user space',
        `${h.kernel} / ${h.user} (${h.beforeUser} kernel blocks before the agent runs: interrupt, wake-up from idle, scheduler, the read's return)`,
      ]);
    }
    // No other QEMU runs at that point, so the pages of QEMU's binary and libraries count as its own.
    if (spare) timing.push(['  a process waiting in the pool, alone: private / PSS / RSS, CPU (mean over 5 s)', `${mib(spare.mem.private)} / ${mib(spare.mem.pss)} / ${mib(spare.mem.rss)} MiB, ${spare.cpuPct.toFixed(1)}% of one core`]);
    if (deployedReady.length > 0) {
      const jits = deployedReady.flatMap((d) => (d.jit ? [d.jit] : []));
      timing.push([
        `then identity applied and a program started, to the agent's answer (median of ${deployedReady.length})`,
        `${median(deployedReady.map((d) => d.ms))} ms (QEMU CPU ${median(deployedReady.map((d) => d.cpuMs))} ms${jits.length > 0 ? `; ${median(jits.map((j) => j.tbs))} blocks, ${mib(median(jits.map((j) => j.codeBytes)))} MiB translated in all` : ''})`,
      ]);
      if (profile) timing.push(['  blocks translated for it: guest kernel / user space (one clone, in_asm log)', `${profile.identity.kernel} / ${profile.identity.user}`]);
    }
    if (zygoteForks.length > 0) {
      const zMs = median(zygoteForks.map((f) => f.readyMs));
      timing.push([`fork to ready from the zygote, nothing waiting (median / p90 of ${zygoteForks.length})`, `${zMs} / ${p90(zygoteForks.map((f) => f.readyMs))} ms (QEMU CPU ${median(zygoteForks.map((f) => f.cpuMs))} ms)`]);
      timing.push([
        '  zygote fork, QEMU start and connect / state load / cont + handshake (medians)',
        `${median(zygoteForks.map((f) => f.phases.connectMs))} / ${median(zygoteForks.map((f) => f.phases.loadMs))} / ${median(zygoteForks.map((f) => f.phases.handshakeMs))} ms`,
      ]);
      timing.push(['  speed-up over cold boot (wall / QEMU CPU)', speedUp(zMs, median(zygoteForks.map((f) => f.cpuMs)))]);
    }
    timing.push([`fork to ready, including QEMU start (median / p90 of ${N_FORKS})`, `${forkMs} / ${p90(forks.map((f) => f.readyMs))} ms (QEMU CPU ${median(forks.map((f) => f.cpuMs))} ms)`]);
    timing.push([
      '  QEMU start / state load / cont + handshake (medians)',
      `${median(forks.map((f) => f.phases.connectMs))} / ${median(forks.map((f) => f.phases.loadMs))} / ${median(forks.map((f) => f.phases.handshakeMs))} ms`,
    ]);
    timing.push(['  speed-up over cold boot (wall / QEMU CPU)', speedUp(forkMs, median(forks.map((f) => f.cpuMs)))]);
    timing.push([`QEMU savevm/loadvm restore to ready (qcow2, -loadvm; median of ${N_RESTORES})`, `${median(loadvm.map((r) => r.readyMs))} ms (savevm took ${savevmMs} ms; vmstate ${mib(vmstateBytes)} MiB)`]);
    timing.push(['  private memory per loadvm-restored guest (median)', `${mib(median(loadvm.map((r) => r.priv)))} MiB`]);
    timing.push([`QEMU migrate-to-file restore to ready (-incoming; median of ${N_RESTORES})`, `${median(incoming.map((r) => r.readyMs))} ms (QEMU CPU ${median(incoming.map((r) => r.cpuMs))} ms; state ${mib(fullBytes)} MiB)`]);
    timing.push(['  private memory per -incoming-restored guest (median)', `${mib(median(incoming.map((r) => r.priv)))} MiB`]);
    timing.push(['template device state (what a fork loads)', `${mib((await stat(template.statePath)).size)} MiB`]);
    const ckptBytes = median(ckpts.map((k) => k.bytes));
    const restoreMs = median(restores);
    timing.push([`mcl checkpoint of an idle clone: on disk (median of ${ckpts.length})`, `${mib(ckptBytes)} MiB (pages ${mib(median(ckpts.map((k) => k.ramBytes)))} MiB compressed, ${median(ckpts.map((k) => k.pages))} pages differ from the template)`]);
    timing.push(['  the clone paused for (median)', `${median(ckpts.map((k) => k.pauseMs))} ms`]);
    const pairedForkMs = median(pairedForks);
    timing.push([`mcl restore to ready (QEMU start, pages, device state, cont + handshake; median / p90 of ${restores.length})`, `${restoreMs} / ${p90(restores)} ms (forks to ready just before each: median ${pairedForkMs} ms)`]);
    timing.push([
      'pause of a 6-component deployment during `mclc checkpoint` (median of 3)',
      deploymentPause ? `${median(deploymentPause.pauses)} ms (checkpoint ${mib(median(deploymentPause.bytes))} MiB in ${median(deploymentPause.elapsed)} ms)` : 'not measured (the CLI is not built: npm run build)',
    ]);

    // N idle clones: as forked, then as deployed. They come from a pool of size 0, as the supervisor's do
    // with MCL_POOL_SIZE=0: each is forked from the template's zygote when it is taken (or QEMU is started
    // for it with MCL_QEMU_ZYGOTE=0).
    const clones = live.clones;
    const memPool = new ClonePool(template, { dir: path.join(dir, 'mem'), size: 0, onError: (e) => console.error(`pool: ${e.message}`) });
    live.pools.push(memPool);
    for (let i = 0; i < N_CLONES; i++) {
      clones.push(await memPool.take({ name: `m${i}`, controlSocket: path.join(dir, `m${i}.ctl`), dataPortSockets: [], logFile: path.join(dir, `m${i}.log`), readyTimeoutMs: 60_000 }));
    }
    const zygotePid = await memPool.zygotePid();
    // Alive, checked with a hello as the fork's own handshake is: any other command would hand the port from the
    // hello responder to the agent's shell, and its wake-up, the first command's cost, would count as the fork's.
    await Promise.all(clones.map((c) => c.control.handshake(30_000)));
    await sleep(3_000);
    const ksmOn = launchCommand('qemu', [], host).ksm && readKsmHost().run === 1;
    const bareWait = ksmOn ? await ksmSettle() : null;
    const ksmd0 = await ksmdCpuMs();
    const ksmdT0 = Date.now();
    const bareCpu = await cpuPercent(clones.map((c) => c.pid), 5_000);
    const ksmdSteady = (100 * ((await ksmdCpuMs()) - ksmd0)) / (Date.now() - ksmdT0);
    const tmpfsBytes = async () => Number((await execa('du', ['-B1', template.memPath])).stdout.split('\t')[0]);
    const bare = await cloneMemory(clones, template, await tmpfsBytes());
    const zygoteMem = zygotePid ? await readMemory(zygotePid) : null;
    for (const [i, c] of clones.entries()) await c.sendIdentity(identity(i), 60_000);
    await sleep(3_000);
    const deployedWait = ksmOn ? await ksmSettle() : null;
    const deployedCpu = await cpuPercent(clones.map((c) => c.pid), 5_000);
    const deployed = await cloneMemory(clones, template, await tmpfsBytes());
    // The zygote's PSS is its share of the pages it holds with the clones: part of what they cost the host.
    if (zygotePid) deployed.hostBytes += (await readMemory(zygotePid)).pss;
    await Promise.all(clones.map((c) => c.kill()));
    clones.length = 0;

    // For comparison: clones with QEMU started directly, as forked.
    const direct: MemoryUsage[] = [];
    if (zygotePid) {
      for (let i = 0; i < N_DIRECT; i++) clones.push(await forkClone(template, { name: `d${i}`, controlSocket: path.join(dir, `d${i}.ctl`), dataPortSockets: [], logFile: path.join(dir, `d${i}.log`), readyTimeoutMs: 60_000 }));
      await Promise.all(clones.map((c) => c.control.ping(30_000)));
      await sleep(3_000);
      direct.push(...(await Promise.all(clones.map((c) => readMemory(c.pid)))));
      await Promise.all(clones.map((c) => c.kill()));
      clones.length = 0;
    }

    // M cold-booted guests, staggered, each given the same identity and program.
    const bootStart = Date.now();
    await pool(N_COLD, BOOT_PARALLEL, async (i) => {
      const g = await startGuest(template, dir, `cm${i}`);
      live.guests.push(g);
      await g.control.sendIdentity(identity(i), 60_000);
      return g;
    });
    const bootAllMs = Date.now() - bootStart;
    await sleep(3_000);
    const coldMem = await Promise.all(live.guests.map((g) => readMemory(g.pid)));
    const coldBootMs = live.guests.map((g) => g.readyMs);
    await Promise.all(live.guests.map(killGuest));
    live.guests.length = 0;
    const coldHost = sum(coldMem.map((m) => m.pss));

    const privBare = median(bare.rollup.map((m) => m.private));
    const privDeployed = median(deployed.rollup.map((m) => m.private));
    memory.push([`private memory per idle clone, as forked (median of ${N_CLONES})`, `${mib(privBare)} MiB = ${pct(privBare)} of guest RAM (${mib(MEMORY)} MiB)`]);
    breakdownRows(memory, bare);
    if (zygoteMem) {
      memory.push([
        `  the zygote they were forked from: private dirty / Pss_Anon / PSS`,
        `${mib(zygoteMem.privateDirty)} / ${mib(zygoteMem.anonPss)} / ${mib(zygoteMem.pss)} MiB (and ${mib(zygoteMem.private - zygoteMem.privateDirty)} MiB of clean file pages only it maps: page cache its dynamic linking read)`,
      ]);
      memory.push([`  with QEMU started directly instead (MCL_QEMU_ZYGOTE=0; median of ${N_DIRECT})`, `${mib(median(direct.map((m) => m.private)))} MiB = ${pct(median(direct.map((m) => m.private)))}`]);
    } else {
      memory.push(['  QEMU zygote', process.env.MCL_QEMU_ZYGOTE === '0' ? 'not used (MCL_QEMU_ZYGOTE=0): QEMU started per clone' : 'not available (see the pool message above): QEMU started per clone']);
    }
    memory.push([`private memory per idle clone, identity applied and a program waiting`, `${mib(privDeployed)} MiB = ${pct(privDeployed)} of guest RAM`]);
    breakdownRows(memory, deployed);
    const anonBare = median(bare.ksm.map((k) => k.anonPss));
    const anonDeployed = median(deployed.ksm.map((k) => k.anonPss));
    memory.push(['proportional anonymous memory per idle clone (Pss_Anon), as forked / deployed', `${mib(anonBare)} / ${mib(anonDeployed)} MiB = ${pct(anonBare)} / ${pct(anonDeployed)}`]);
    if (ksmOn && bareWait && deployedWait) {
      const params = `pages_to_scan ${await ksmValue('pages_to_scan')}, sleep_millisecs ${await ksmValue('sleep_millisecs')}, use_zero_pages ${await ksmValue('use_zero_pages')}`;
      memory.push(['KSM (MCL_QEMU_KSM=1, ksmd running)', params]);
      memory.push(['  merged pages mapped per clone, as forked / deployed (median)', `${mib(median(bare.ksm.map((k) => k.merged + k.zero)))} / ${mib(median(deployed.ksm.map((k) => k.merged + k.zero)))} MiB`]);
      memory.push(['  two full scans took, as forked / deployed (ksmd CPU)', `${(bareWait.ms / 1000).toFixed(1)} s (${bareWait.ksmdCpuMs} ms) / ${(deployedWait.ms / 1000).toFixed(1)} s (${deployedWait.ksmdCpuMs} ms)`]);
      memory.push([`  ksmd CPU with ${N_CLONES} idle clones merged (mean over 5 s)`, `${ksmdSteady.toFixed(1)}% of one core`]);
    } else {
      memory.push(['KSM', `not used for the clones (${launchCommand('qemu', [], host).ksm ? 'ksmd is not running' : 'MCL_QEMU_KSM is not 1'})`]);
    }
    memory.push(['CPU per idle clone, as forked / deployed (mean over 5 s)', `${bareCpu.toFixed(1)}% / ${deployedCpu.toFixed(1)}% of one core`]);
    memory.push(['RSS per idle clone, as forked / deployed (median)', `${mib(median(bare.rollup.map((m) => m.rss)))} / ${mib(median(deployed.rollup.map((m) => m.rss)))} MiB`]);
    memory.push([`total host memory, ${N_CLONES} deployed clones`, `${mib(deployed.hostBytes)} MiB (sum of PSS, template RAM file counted whole: ${mib(await tmpfsBytes())} MiB on tmpfs)`]);
    memory.push([`total host memory, ${N_COLD} cold-booted guests, deployed alike`, `${mib(coldHost)} MiB (sum of PSS; ${mib(coldHost / N_COLD)} MiB each)`]);
    memory.push([`  their boots, ${BOOT_PARALLEL} at a time: to ready (median / max), all`, `${median(coldBootMs)} / ${Math.max(...coldBootMs)} ms, ${(bootAllMs / 1000).toFixed(1)} s`]);
    if (N_CLONES === N_COLD) memory.push(['memory saved by forking', `${(100 * (1 - deployed.hostBytes / coldHost)).toFixed(0)}%`]);

    const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
    const incomingMs = median(incoming.map((r) => r.readyMs));
    targets.push(['fork to ready >= 100x faster than cold boot to ready (pooled)', `${verdict(coldMs / pooledMs >= 100)} (${(coldMs / pooledMs).toFixed(1)}x: ${pooledMs} ms against ${coldMs} ms; including QEMU start ${(coldMs / forkMs).toFixed(1)}x)`]);
    targets.push([
      "fork to ready >= 10x faster than QEMU's own migrate-to-file restore (pooled)",
      `${verdict(incomingMs / pooledMs >= 10)} (${(incomingMs / pooledMs).toFixed(1)}x: ${pooledMs} ms against ${incomingMs} ms)`,
    ]);
    // On a loaded host the wall times stretch unevenly (a boot waits for the CPU far longer than a fork does);
    // QEMU's CPU time is the steadier measure. It counts in clock ticks (10 ms): a floor of one tick keeps it finite.
    const pooledCpu = Math.max(10, median(pooled.map((f) => f.cpuMs)));
    const incomingCpu = median(incoming.map((r) => r.cpuMs));
    targets.push([
      '  the two by QEMU CPU time (cold boot / migrate-to-file restore against the pooled fork)',
      `${verdict(coldCpu / pooledCpu >= 100)} / ${verdict(incomingCpu / pooledCpu >= 10)} (${(coldCpu / pooledCpu).toFixed(1)}x / ${(incomingCpu / pooledCpu).toFixed(1)}x: ${pooledCpu} ms against ${coldCpu} / ${incomingCpu} ms)`,
    ]);
    targets.push([`private memory per idle clone <= 10% of guest RAM, as forked`, `${verdict(privBare <= MEMORY / 10)} (${pct(privBare)})`]);
    targets.push([`  the same, deployed`, `${verdict(privDeployed <= MEMORY / 10)} (${pct(privDeployed)}; TCG translation buffer ${process.env.MCL_TCG_TB_MIB ? `${process.env.MCL_TCG_TB_MIB} MiB` : 'default'})`]);
    if (accel.accel === 'tcg') {
      // KVM runs guest code natively: a clone there holds no translated code (nor TCG's block hash table, part of "other").
      const noJit = privDeployed - median(deployed.parts.map((p) => p.tcgCode));
      targets.push([`  the same, deployed, without TCG's translated code (an upper bound for KVM)`, `${verdict(noJit <= MEMORY / 10)} (${pct(noJit)})`]);
    }
    targets.push([`  the same, as forked, proportional (Pss_Anon)`, `${verdict(anonBare <= MEMORY / 10)} (${pct(anonBare)})`]);
    targets.push(['checkpoint of an idle 128 MiB clone <= 8 MiB on disk', `${verdict(ckptBytes <= 8 * 1024 * 1024)} (${mib(ckptBytes)} MiB)`]);
    targets.push([
      'restore to ready <= 3x fork to ready (forks including QEMU start, as a restore does, paired with the restores)',
      `${verdict(restoreMs <= 3 * pairedForkMs)} (${(restoreMs / pairedForkMs).toFixed(2)}x; ${(restoreMs / pooledMs).toFixed(2)}x the pooled fork measured earlier)`,
    ]);
  } finally {
    await Promise.all(live.clones.map((c) => c.kill()));
    await Promise.all(live.guests.map(killGuest));
    await Promise.all(live.pools.map((p) => p.close()));
    await rm(dir, { recursive: true, force: true });
  }
  const w = Math.max(...[...timing, ...memory, ...targets].map((r) => r[0].length));
  const table = (title: string, rows: [string, string][]) => {
    console.log(`\n${title.padEnd(w)}  value`);
    console.log(`${'-'.repeat(w)}  ${'-'.repeat(20)}`);
    for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
  };
  table('time to ready (the agent answered a hello)', timing);
  table('memory', memory);
  table('targets', targets);
  console.log(`
Private memory is Private_Clean + Private_Dirty summed over /proc/PID/smaps while
all ${N_CLONES} clones run: pages that no other process maps, which the clone's exit
would free (page tables, about 0.35 MiB per QEMU, are not in smaps and not counted).
The breakdown sorts it by mapping: the template RAM file, the anonymous writable
and executable mapping (TCG's translation buffer), [heap], files (QEMU's and its
libraries' relocated data), everything else. PSS shares each shared page among
the processes that map it. Pss_Anon is the anonymous part of PSS: with KSM, a page
merged with another of the same process counts as shared in the private figure,
while Pss_Anon charges each of its mappings its share.`);
  const load = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
  console.log(`\nhost: ${os.cpus().length} cpus, load average ${load}`);
}

/**
 * The pause of a deployment of 6 components (3 counters each storing its
 * count through the broker in its own store) while `mclc checkpoint` takes
 * it, through the built CLI as a user runs it; 3 checkpoints, then destroy.
 * Null when the CLI is not built.
 */
async function deploymentCheckpointPause(dir: string): Promise<{ pauses: number[]; bytes: number[]; elapsed: number[] } | null> {
  // npm runs the benchmark from the repository's root.
  const repo = process.cwd();
  const mclc = path.join(repo, 'cli/dist/mclc.mjs');
  if (!existsSync(mclc)) return null;
  const ws = await mkdtemp(path.join(dir, 'ws-'));
  await cp(path.join(repo, 'backends/kvm/test/fixtures/checkpoint/guest'), path.join(ws, 'guest'), { recursive: true });
  const pairs = [1, 2, 3];
  await writeFile(
    path.join(ws, 'six.mcl'),
    [
      'import std.kv.{Kv}',
      'component Store {\n  memory 128MiB\n  provide kv: Kv\n  program { script "guest/store.sh" }\n}',
      'component Counter {\n  memory 128MiB\n  require db: Kv\n  program { script "guest/counter.sh" }\n}',
      `system Six {\n${pairs.map((i) => `  counter${i} = Counter\n  store${i} = Store\n  connect counter${i}.db -> store${i}.kv { allow get, put }`).join('\n')}\n}`,
      'deploy Six',
      '',
    ].join('\n\n'),
  );
  const run = (...args: string[]) => execa(process.execPath, [mclc, ...args], { cwd: ws, env: { ...process.env, NO_COLOR: '1' } });
  await run('plan', '.', '--out', 'six.plan');
  await run('apply', 'six.plan');
  try {
    await sleep(3_000);
    const out = { pauses: [] as number[], bytes: [] as number[], elapsed: [] as number[] };
    for (let i = 0; i < 3; i++) {
      const r = await run('checkpoint', '--out', `c${i}`, '--json');
      const result = JSON.parse(r.stdout.trim().split('\n').pop()!) as { pause_ms: number; bytes: number; elapsed_ms: number };
      out.pauses.push(result.pause_ms);
      out.bytes.push(result.bytes);
      out.elapsed.push(result.elapsed_ms);
    }
    return out;
  } finally {
    await run('destroy').catch(() => undefined);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
