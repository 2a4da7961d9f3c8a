// Benchmark of the Xen backend on the nested-Xen test bed (run: npm run
// bench:xen, which builds the CLI bundle dom0 runs; the benchmark itself runs
// under tsx, since it finds the repository from its own source location).
//
// Boots Debian's Xen 4.17 under QEMU TCG (backends/xen/test/nested/harness.ts)
// with this repository's mclc in dom0 (mcl-dom0.ts), and measures through the
// backend's own code, in one run: `mclc plan` and `mclc apply` of a small
// system (bench/chain.mcl: a chain of N instances of one component, so the
// supervisor starts them one after the other), then `mclc status` and
// `mclc destroy`. The figures are what the backend itself measured and
// logged (XenRuntime, over XlToolstack):
// - cold boot of a PVH guest to ready: the template's `xl create`, unpause,
//   and the agent's answer on its control vchan;
// - restore from the parked template to ready: each instance's `xl restore
//   -p` of the saved image, its vchan relays, unpause, the agent's answer
//   after Linux's resume path, and its identity;
// - memory per instance from the hypervisor, as `mclc status` reports it:
//   tot_pages (rss_bytes) and the pages not shared with a parent
//   (private_bytes), with every instance running.
//
// Restore is the instance path of a hypervisor without memory sharing (the
// nested one here: TCG has no VT-x). Fork and fork_reset are measured on an
// Intel host (spec/xen.md, "Runbook").
//
// Options: --instances N (default 4, at least 2), --memory MiB (default 128).

import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { CpioEntry } from '../../kvm/src/image/cpio';
import { NestedXen } from '../test/nested/harness';
import { MCL_ENV, mclFiles } from '../test/nested/mcl-dom0';
import { isCloneDomain } from '../src/names';
import { type DomainInfo, parseDomainList } from '../src/toolstack';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const N = Math.max(2, arg('instances', 4));
const MEMORY_MIB = arg('memory', 128);
const WS = '/root/bench';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mib = (bytes: number) => (bytes / 1048576).toFixed(1);
const verdict = (ok: boolean) => (ok ? 'met' : 'NOT MET');

/** The system: a chain t1 <- t2 <- ... <- tN, so that each instance starts after the one it requires. */
function benchSystem(): string {
  const lines = [
    '/// The system `npm run bench:xen` deploys on the nested Xen: a chain of instances of one component.',
    'type Ping = { n: int }',
    'protocol Echo {',
    '  call ping(Ping) -> Ping',
    '}',
    'component Tier {',
    `  memory ${MEMORY_MIB}MiB`,
    '  provide up: Echo',
    '  require down: Echo optional',
    '  program { script "tier.sh" }',
    '}',
    'system Chain {',
    ...Array.from({ length: N }, (_, i) => `  t${i + 1} = Tier`),
    ...Array.from({ length: N - 1 }, (_, i) => `  connect t${i + 2}.down -> t${i + 1}.up`),
    '}',
    `target dom0 {\n  backend xen\n  memory ${N * MEMORY_MIB + 1024}MiB\n  vcpus ${N + 2}\n}`,
    'deploy Chain to dom0',
    '',
  ];
  return lines.join('\n');
}

const TIER = '#!/bin/sh\n. mcl-msg\npong() {\n  mcl_reply "$MCL_BODY"\n}\nmcl_serve up pong\n';

function workspace(): CpioEntry[] {
  return [
    { kind: 'file', path: `${WS}/chain.mcl`.slice(1), mode: 0o644, data: Buffer.from(benchSystem()) },
    { kind: 'file', path: `${WS}/tier.sh`.slice(1), mode: 0o755, data: Buffer.from(TIER) },
  ];
}

interface Status {
  accelerator?: { name: string };
  instances: { id: string; clones: { state: string; rss_bytes?: number; private_bytes?: number; pss_bytes?: number }[] }[];
}

/**
 * `mclc status --json`, asked again (at most 5 times, 10 s apart) while it
 * reports fewer running clones than the bench deployed: status falls back to
 * the state file, which records no clone, when the supervisor does not answer
 * its ping in time, as a guest of a guest on a loaded machine may not.
 */
async function statusWithClones(mclc: (args: string[], timeoutMs: number) => Promise<string>, want: number): Promise<Status & { asked: number }> {
  let st!: Status;
  for (let asked = 1; ; asked++) {
    st = JSON.parse(await mclc(['status', '--json'], 300_000)) as Status;
    const running = st.instances.flatMap((i) => i.clones).filter((c) => c.state === 'running' && c.rss_bytes !== undefined).length;
    if (running >= want || asked >= 5) return { ...st, asked };
    await new Promise((r) => setTimeout(r, 10_000));
  }
}

async function main() {
  const started = Date.now();
  const nx = await NestedXen.start({
    files: [...(await mclFiles()), ...workspace()],
    // Dom0 (node, the supervisor, the broker, the saved image), the instances, Xen's own.
    dom0MemMiB: 1536,
    memoryMiB: 1536 + (N + 1) * (MEMORY_MIB + 16) + 512,
    deadlineMs: 60 * 60_000,
    // The machine is shared: dom0 under TCG can take minutes to come up when others load it.
    bootTimeoutMs: 900_000,
    log: (l) => console.log(`nested xen: ${l}`),
  });
  const bootMs = nx.readyAt - nx.startedAt;
  const mclc = async (args: string[], timeoutMs: number): Promise<string> => {
    const r = await nx.exec(['/usr/local/bin/mclc', ...args], { cwd: WS, env: MCL_ENV, timeoutMs });
    if (r.code !== 0) throw new Error(`mclc ${args.join(' ')}: ${r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal}`}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };
  let log = '';
  let st: Status;
  let domains: DomainInfo[] = [];
  let imageBytes = 0;
  let info = '';
  let applyMs = 0;
  try {
    info = await nx.sh('xl info');
    await mclc(['plan', '.', '--out', 'chain.plan'], 600_000);
    const t0 = Date.now();
    await mclc(['apply', 'chain.plan', '--ready-timeout', '30m'], 50 * 60_000);
    applyMs = Date.now() - t0;
    // The hypervisor's own count of each clone's pages, read straight from it in dom0 (the helper's domain list),
    // beside what `mclc status` reports from the supervisor.
    domains = parseDomainList(await nx.sh(`${MCL_ENV.MCL_XEN_HELPER} list`)).filter((d) => isCloneDomain(d.name));
    st = await statusWithClones(mclc, N);
    log = await nx.sh('cat .mcl/run/supervisor.log', { cwd: WS });
    imageBytes = Number((await nx.sh('stat -c %s .mcl/run/xen/*.img | head -n 1', { cwd: WS })).trim()) || 0;
    await mclc(['destroy'], 600_000);
  } catch (e) {
    const diag = await nx
      .sh('xl list; echo "== xl dmesg"; xl dmesg | tail -n 40; echo "== supervisor.log"; tail -n 40 .mcl/run/supervisor.log; for f in /var/log/xen/console/*.log; do echo "== $f"; tail -n 20 "$f"; done', { cwd: WS })
      .catch((d: Error) => d.message);
    console.log(`nested xen: dom0 after the failure:\n${diag}`);
    throw e;
  } finally {
    await nx.close();
  }

  // The backend's own log lines (xen-runtime.ts): "<template>: cold boot to ready in X ms, saved in Y ms (Z bytes)"
  // and "<clone>: dN restored and ready in X ms".
  const cold = [...log.matchAll(/xen: \S+: cold boot to ready in (\d+) ms, saved in (\d+) ms/g)].map((m) => ({ readyMs: Number(m[1]), saveMs: Number(m[2]) }));
  const restores = [...log.matchAll(/xen: (\S+): d\d+ restored and ready in (\d+) ms(?: \((?:waited (\d+) ms for its turn, )?toolstack (\d+) ms, guest (\d+) ms\))?/g)].map((m) => ({
    name: m[1],
    readyMs: Number(m[2]),
    waitMs: Number(m[3] ?? 0),
    toolstackMs: m[4] === undefined ? null : Number(m[4]),
    guestMs: m[5] === undefined ? null : Number(m[5]),
  }));
  const retried = [...log.matchAll(/restore \d+ of \d+ (?:died while resuming|failed)/g)].length;
  if (cold.length === 0 || restores.length === 0) throw new Error(`the supervisor's log has no timing lines of the backend:\n${log.slice(-4000)}`);
  const clones = st.instances.flatMap((i) => i.clones.map((c) => ({ id: i.id, ...c })));
  const guestBytes = MEMORY_MIB * 1048576;
  const coldMs = cold[0].readyMs;
  const restoreMs = median(restores.map((r) => r.readyMs));
  const rss = median(clones.map((c) => c.rss_bytes ?? 0));
  const priv = median(clones.map((c) => c.private_bytes ?? 0));
  const field = (k: string) => new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm').exec(info)?.[1] ?? '?';
  console.log(`hypervisor: Xen ${field('xen_version')} (${nx.dom0.xenPackage}), virt_caps ${field('virt_caps')}; dom0 kernel ${nx.dom0.dom0KernelRelease}`);
  console.log(`accelerator: ${st.accelerator?.name ?? '?'}`);

  const timing: [string, string][] = [
    ['cold boot of the template to ready (xl create + boot + agent on its vchan)', `${coldMs} ms`],
    ['  parked with xl save / saved image', `${cold[0].saveMs} ms / ${mib(imageBytes)} MiB`],
    [`restore from the parked template to ready (median of ${restores.length}: ${restores.map((r) => r.readyMs).join(', ')} ms)`, `${restoreMs} ms`],
    ...(restores.every((r) => r.toolstackMs !== null && r.guestMs !== null)
      ? ([
          ['  of which xl restore (median; the wait for its turn apart)', `${median(restores.map((r) => r.toolstackMs!))} ms (waited ${median(restores.map((r) => r.waitMs))} ms)`],
          ['  of which the guest: relays, unpause, resume, agent, identity (median)', `${median(restores.map((r) => r.guestMs!))} ms`],
        ] as [string, string][])
      : []),
    ['  restores retried (the guest died while resuming, or xl restore failed)', `${retried}`],
    ['  speed-up over cold boot', `${(coldMs / restoreMs).toFixed(1)}x`],
    [`mclc apply, whole (image build in dom0, template, ${N} instances)`, `${(applyMs / 1000).toFixed(0)} s`],
    ['nested Xen boot (QEMU start to dom0 agent answering)', `${(bootMs / 1000).toFixed(1)} s`],
  ];
  const asked = (st as { asked?: number }).asked ?? 1;
  // Private pages per instance: status's figure, else the hypervisor's (pages not shared with a parent).
  const privOf = clones.length ? priv : median(domains.map((d) => Math.max(0, d.tot_pages - d.shr_pages) * 4096));
  const hv = domains.map((d) => d.tot_pages);
  const memory: [string, string][] = [
    ...(hv.length === 0
      ? ([['mcl-xen list (the hypervisor, in dom0)', 'listed no clone domain']] as [string, string][])
      : ([
          [`tot_pages per instance, from the hypervisor (median of ${hv.length} domains; guest RAM ${MEMORY_MIB} MiB)`, `${median(hv)} pages = ${mib(median(hv) * 4096)} MiB`],
          ...domains.map((d): [string, string] => [`  ${d.name.replace(/^mcl-[0-9a-f]+-/, '')} (d${d.domid})`, `${d.tot_pages} pages = ${mib(d.tot_pages * 4096)} MiB, shared ${d.shr_pages}`]),
        ] as [string, string][])),
    ...(clones.length === 0
      ? ([['mclc status --json', `reported no clone after ${asked} tries (deployed: ${String((st as { deployed?: boolean }).deployed)})`]] as [string, string][])
      : ([
          [`rss_bytes per instance, as mclc status reports it (median of ${clones.length}${asked > 1 ? `; status asked ${asked} times` : ''})`, `${rss / 4096} pages = ${mib(rss)} MiB`],
          ['  of which not shared with a parent (private_bytes)', `${mib(priv)} MiB (${((100 * priv) / guestBytes).toFixed(0)}% of guest RAM)`],
          [`all ${clones.length} instances together`, `${mib(clones.reduce((s, c) => s + (c.rss_bytes ?? 0), 0))} MiB`],
        ] as [string, string][])),
  ];
  const targets: [string, string][] = [
    ['restore to ready faster than cold boot to ready', `${verdict(restoreMs < coldMs)} (${(coldMs / restoreMs).toFixed(1)}x)`],
    [
      'private memory per idle instance <= 10% of guest RAM (the fork path\'s target, as on KVM)',
      clones.length === 0 && domains.length === 0 ? 'not measured' : `${verdict(privOf <= guestBytes / 10)} (${((100 * privOf) / guestBytes).toFixed(0)}%: ${/restore/.test(st.accelerator?.name ?? '') ? 'the restore path shares nothing; the fork path is measured on an Intel host' : 'forks'})`,
    ],
  ];
  const w = Math.max(...[...timing, ...memory, ...targets].map((r) => r[0].length));
  const table = (title: string, rs: [string, string][]) => {
    console.log(`\n${title.padEnd(w)}  value`);
    console.log(`${'-'.repeat(w)}  ${'-'.repeat(20)}`);
    for (const [k, v] of rs) console.log(`${k.padEnd(w)}  ${v}`);
  };
  table('time to ready, measured by the backend in dom0 (nested Xen under QEMU TCG)', timing);
  table('memory from the hypervisor, as mclc status reports it (tot_pages, shr_pages)', memory);
  table('targets', targets);
  console.log(`
Times are the backend's own (dom0's clock), so the host's control path is not
in them. Under TCG every guest instruction is emulated, twice over for a guest
of a guest: the absolute figures are far from a real host's, the ratio between
the two paths is what carries over.`);
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`\nhost: ${os.cpus().length} cpus, load average ${load}; whole run ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
