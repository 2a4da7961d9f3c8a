// Live migration figures (run: npm run bench:migrate [-- --modes precopy,pages]; both by default).
//
// Migrates a 128 MiB clone of the test template to a QEMU started from the
// same template on this machine, through the TLS tunnel, with QEMU's precopy
// and by the clone's own pages (migrate-pages.ts), each twice: idle (its
// program waits for calls that do not come) and busy (a stream of calls
// through its port and a guest program rewriting 16 MiB of its memory in a
// loop). Prints, for each: total time, the guest's downtime (QEMU stopped it),
// the traffic hold (from the hold of the clone's frames to their release at
// the new place), bytes sent (RAM, and on the wire) against the clone's
// private memory, and for the busy run the calls served and that none was lost
// or duplicated. The destination shares this host's template, where a real
// second host would build it from the same content hash.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makeLinkIdentity, type Broker } from '@mcl/broker';
import { MIGRATION_MODES, type MigrationMode } from '@mcl/plan/backend';
import type { FakePort } from '../../broker/test/helpers';
import { cloneMigrationBroker } from '../src/lifecycle/migrate';
import type { Clone } from '../src/vm/index';
import { migrateClone } from '../src/vm/migrate';
import { movePages } from '../src/vm/migrate-pages';
import { destination, kvDeployment, load, migrationIdentities, pagesDestination, waitFor } from '../test/fixtures/migrate';
import { testTemplate } from '../test/fixtures/vm';

const cacheDir = process.env.MCL_CACHE_DIR ?? path.join(os.tmpdir(), 'mcl-vm-test-cache');
const MiB = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
/** Rewrites 16 MiB of random data in the guest's RAM-backed /tmp, over and over. */
const DIRTY = '(head -c 16777216 /dev/urandom > /tmp/a; while :; do cp /tmp/a /tmp/b; done) &';

const run = await mkdtemp(path.join(os.tmpdir(), 'mcl-mig-bench-'));
const brokers: Broker[] = [];
const fakes: FakePort[] = [];
const clones: Clone[] = [];
const rows: Record<string, unknown>[] = [];
try {
  const template = await testTemplate(cacheDir);
  const ids = migrationIdentities(makeLinkIdentity('node1'), makeLinkIdentity('node2'));
  const modesArg = process.argv.indexOf('--modes');
  const modes = (modesArg > 0 ? (process.argv[modesArg + 1] ?? '').split(',') : [...MIGRATION_MODES]) as MigrationMode[];
  for (const mode of modes.filter((m) => MIGRATION_MODES.includes(m))) {
    for (const kind of ['idle', 'busy'] as const) {
      const name = `${mode}-${kind}`;
      const dep = await kvDeployment(template, run, name, { brokers, fakes, clones, extra: kind === 'busy' ? DIRTY : undefined });
      const l = kind === 'busy' ? load(dep.client) : null;
      // A loaded machine takes a while to start the busy guest's writer beside its calls.
      if (l) await waitFor(() => l.answered() >= 50, 180_000);
      // Let the busy guest's writer fill its 16 MiB first.
      await new Promise((r) => setTimeout(r, kind === 'busy' ? 3_000 : 500));
      const mb = cloneMigrationBroker(dep.broker, 'db', 0, { kv: dep.sock }, { kv: path.join(run, `${name}-d.p1`) });
      const cpu0 = process.cpuUsage();
      let report: { totalMs: number; guestDowntimeMs: number; holdMs: number; attempts: number; wireBytes: number; sourcePrivateBytes: number };
      let sent: string;
      if (mode === 'precopy') {
        const d = await destination(template, run, `${name}-d`, ids);
        const r = await migrateClone(dep.clone, d.dest, d.tunnel, mb);
        clones.push(r.clone);
        d.tunnel.close();
        report = r.report;
        sent = `RAM sent ${MiB(r.report.ramBytes)} (${r.report.normalPages} pages whole, ${r.report.zeroPages} zero pages as a flag)`;
      } else {
        const d = await pagesDestination(template, run, `${name}-d`, ids);
        const r = await movePages(dep.clone, d.tunnel, d.receiver, mb);
        clones.push(r.clone);
        d.tunnel.close();
        report = r.report;
        sent = `pages sent ${r.report.sentPages} (${r.report.livePages} while running in ${r.report.rounds} round(s), ${r.report.finalPages} stopped) of ${r.report.privatePages} private (${MiB(r.report.ramBytes)} deflated), device state ${MiB(r.report.deviceStateBytes)}; stopped: capture ${r.report.phases.captureMs} ms, send+load ${r.report.phases.sendAndLoadMs} ms, switch ${r.report.phases.switchMs} ms`;
      }
      const cpu = process.cpuUsage(cpu0);
      let calls = '';
      if (l) {
        const before = l.answered();
        await waitFor(() => l.answered() >= before + 50, 180_000);
        const r = await l.stop();
        calls = `${r.sent} calls, ${r.sent - r.answers.size} lost, ${r.duplicates.length} duplicated, ${r.errors.length} failed`;
      }
      rows.push({ mode, kind, ...report, supervisorCpuMs: Math.round((cpu.user + cpu.system) / 1000), calls });
      console.log(
        `${mode.padEnd(7)} ${kind.padEnd(4)} total ${String(report.totalMs).padStart(6)} ms  guest stopped ${String(report.guestDowntimeMs).padStart(5)} ms  ` +
          `traffic held ${report.holdMs.toFixed(0).padStart(5)} ms  attempts ${report.attempts}  ${sent}  wire ${MiB(report.wireBytes)}  ` +
          `clone private ${MiB(report.sourcePrivateBytes)}  wire/private ${(report.wireBytes / Math.max(1, report.sourcePrivateBytes)).toFixed(3)}` +
          (calls ? `  ${calls}` : ''),
      );
    }
  }
  console.log(JSON.stringify(rows));
} finally {
  for (const b of brokers) await b.close();
  for (const f of fakes) await f.close();
  await Promise.all(clones.map((c) => c.kill()));
  await rm(run, { recursive: true, force: true });
}
