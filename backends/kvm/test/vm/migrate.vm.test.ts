// Live migration of a clone on real QEMU (TCG where KVM is missing): the
// destination QEMU is started from the same template on this machine (the
// simulated second host shares this host's template, where a real one would
// build it from the same content hash), the stream goes over the TLS tunnel
// with pinned certificates, and the clone goes on where it was.

import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeLinkIdentity, type Broker } from '@mcl/broker';
import type { FakePort } from '../../../broker/test/helpers';
import { cloneMigrationBroker } from '../../src/lifecycle/migrate';
import { destination as dest, kvDeployment as kvDep, load, migrationIdentities, pagesDestination, waitFor } from '../fixtures/migrate';
import { movePages } from '../../src/vm/migrate-pages';
import { connectUnix, forkClone, type Clone, type Template } from '../../src/vm/index';
import { migrateClone, type MigrationIdentity } from '../../src/vm/migrate';
import { testTemplate } from '../fixtures/vm';

const cacheDir = process.env.MCL_CACHE_DIR ?? path.join(os.tmpdir(), 'mcl-vm-test-cache');
let template: Template;
let run: string;
const clones: Clone[] = [];
const brokers: Broker[] = [];
const fakes: FakePort[] = [];

const destination = (name: string) => dest(template, run, name, { src, dst });
const kvDeployment = (name: string) => kvDep(template, run, name, { brokers, fakes, clones });

/** Checks the answers of a load: each call answered once, with its own key, and the guest counted every call once. */
function checkAnswers(r: Awaited<ReturnType<ReturnType<typeof load>['stop']>>) {
  expect(r.errors).toEqual([]);
  expect(r.duplicates).toEqual([]);
  expect(r.answers.size).toBe(r.sent);
  const counts = [...r.answers.entries()].map(([id, b]) => {
    const hit = b.hit as { key: string; value: string };
    expect(hit.key).toBe(`k${id}`);
    return Number(hit.value);
  });
  expect(counts.sort((a, b) => a - b)).toEqual(Array.from({ length: r.sent }, (_, i) => i + 1));
}
let src: MigrationIdentity;
let dst: MigrationIdentity;

/** Echoes every line of its port with a counter, so a clone that lost its memory would count from 1 again. */
const ECHO = 'exec 3<>/dev/mcl/echo; n=0; while read -r l <&3; do n=$((n+1)); echo "$n:$l" >&3; done';

function lines(sock: net.Socket) {
  let buf = '';
  const queue: string[] = [];
  const waiting: ((l: string) => void)[] = [];
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiting.shift();
      if (w) w(l);
      else queue.push(l);
    }
  });
  return (timeoutMs = 20_000): Promise<string> => {
    const q = queue.shift();
    if (q !== undefined) return Promise.resolve(q);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no line from the data port')), timeoutMs);
      waiting.push((l) => {
        clearTimeout(t);
        resolve(l);
      });
    });
  };
}

async function echoClone(name: string) {
  const clone = await forkClone(template, {
    name,
    controlSocket: path.join(run, `${name}.ctl`),
    dataPortSockets: [path.join(run, `${name}.p1`)],
    logFile: path.join(run, `${name}.log`),
    readyTimeoutMs: 60_000,
  });
  clones.push(clone);
  const data = await connectUnix(path.join(run, `${name}.p1`), 5_000);
  const next = lines(data);
  await clone.sendIdentity({ instanceId: 'echo', clone: 0, ports: [{ name: 'echo', slot: 1 }], program: { argv: ['/bin/sh', '-c', ECHO], env: {}, files: [] } });
  return { clone, data, next };
}

beforeAll(async () => {
  run = await mkdtemp(path.join(os.tmpdir(), 'mcl-mig-'));
  template = await testTemplate(cacheDir);
  ({ src, dst } = migrationIdentities(makeLinkIdentity('node1'), makeLinkIdentity('node2')));
}, 300_000);

afterAll(async () => {
  for (const b of brokers) await b.close();
  for (const p of fakes) await p.close();
  await Promise.all(clones.map((c) => c.kill()));
  if (run) await rm(run, { recursive: true, force: true });
});

describe('live migration of a clone', () => {
  it('moves a running clone to a QEMU started from the same template; it goes on where it was', async () => {
    const s = await echoClone('m1');
    s.data.write('a\n');
    expect(await s.next()).toBe('1:a');
    const d = await destination('m1d');
    s.data.on('error', () => undefined);
    // The port's host end is connected before the guest continues, as the broker does: a guest whose port
    // has no host reads end-of-file.
    let data!: net.Socket;
    const { clone, report } = await migrateClone(s.clone, d.dest, d.tunnel, {
      hold: () => undefined,
      drained: async () => true,
      move: async () => {
        data = await connectUnix(path.join(run, 'm1d.p1'), 5_000);
      },
      release: () => undefined,
    });
    clones.push(clone);
    d.tunnel.close();
    const next = lines(data);
    data.write('b\n');
    expect(await next()).toBe('2:b');
    expect(report.ramBytes).toBeGreaterThan(0);
    expect(report.wireBytes).toBeGreaterThanOrEqual(report.ramBytes);
    console.log(JSON.stringify(report));
  }, 300_000);

  it('moves the provider of a stream of calls: no call is lost or served twice, and the held ones go to the new place', async () => {
    const { broker, clone, client, sock } = await kvDeployment('kv1');
    const l = load(client);
    await waitFor(() => l.answered() >= 20, 60_000);
    const d = await destination('kv1d');
    const lines: string[] = [];
    const { clone: moved, report } = await migrateClone(
      clone,
      d.dest,
      d.tunnel,
      cloneMigrationBroker(broker, 'db', 0, { kv: sock }, { kv: path.join(run, 'kv1d.p1') }),
      (line) => lines.push(line),
    );
    clones.push(moved);
    d.tunnel.close();
    const before = l.answered();
    await waitFor(() => l.answered() >= before + 20, 60_000);
    const r = await l.stop();
    checkAnswers(r);
    expect(report.holdMs).toBeGreaterThan(0);
    console.log(JSON.stringify({ calls: r.sent, ...report, lines }));
  }, 300_000);

  it('leaves the clone serving on the source when the destination dies mid-way', async () => {
    const { broker, clone, client, sock } = await kvDeployment('kv2');
    const l = load(client);
    await waitFor(() => l.answered() >= 10, 60_000);
    const d = await destination('kv2d');
    // The destination QEMU is killed once the stream is flowing.
    void d.listener.connected.then(() => setTimeout(() => d.dest.q.kill('SIGKILL'), 300));
    await expect(
      migrateClone(clone, d.dest, d.tunnel, cloneMigrationBroker(broker, 'db', 0, { kv: sock }, { kv: path.join(run, 'kv2d.p1') })),
    ).rejects.toThrow(/goes on running on the source|destination/);
    d.tunnel.close();
    expect(clone.exited).toBeDefined();
    const before = l.answered();
    await waitFor(() => l.answered() >= before + 10, 60_000);
    const r = await l.stop();
    checkAnswers(r);
    expect(await clone.control.ping()).toBeGreaterThanOrEqual(0);
  }, 300_000);

  it('leaves the clone serving on the source when the link between the hosts is cut mid-way', async () => {
    const { broker, clone, client, sock } = await kvDeployment('kv3');
    const l = load(client);
    await waitFor(() => l.answered() >= 10, 60_000);
    const d = await destination('kv3d');
    void d.listener.connected.then(() => setTimeout(() => d.tunnel.close(), 300));
    await expect(
      migrateClone(clone, d.dest, d.tunnel, cloneMigrationBroker(broker, 'db', 0, { kv: sock }, { kv: path.join(run, 'kv3d.p1') })),
    ).rejects.toThrow(/goes on running on the source|destination/);
    // The destination QEMU was stopped with the failed migration.
    expect(d.dest.q.exit()).not.toBeNull();
    const before = l.answered();
    await waitFor(() => l.answered() >= before + 10, 60_000);
    checkAnswers(await l.stop());
  }, 300_000);

  it('moves the provider of a stream of calls by its own pages: megabytes instead of the whole RAM, nothing lost or served twice', async () => {
    const { broker, clone, client, sock } = await kvDeployment('kv4');
    const l = load(client);
    await waitFor(() => l.answered() >= 20, 60_000);
    const d = await pagesDestination(template, run, 'kv4d', { src, dst });
    const { clone: moved, report } = await movePages(clone, d.tunnel, d.receiver, cloneMigrationBroker(broker, 'db', 0, { kv: sock }, { kv: path.join(run, 'kv4d.p1') }));
    clones.push(moved);
    d.tunnel.close();
    const before = l.answered();
    await waitFor(() => l.answered() >= before + 20, 60_000);
    checkAnswers(await l.stop());
    // Live rounds sent the pages the clone had written while it ran; with the guest stopped, only what the
    // calls changed since went (a final frame that resent everything would make the live rounds pointless).
    expect(report.rounds).toBeGreaterThanOrEqual(1);
    expect(report.livePages).toBeGreaterThan(0);
    expect(report.finalPages).toBeLessThan(report.livePages);
    expect(report.sentPages).toBe(report.livePages + report.finalPages);
    // The pages the clone wrote, deflated, are a small part of its RAM.
    expect(report.wireBytes).toBeLessThan(32 * 1024 * 1024);
    console.log(JSON.stringify(report));
  }, 300_000);

  it('refuses a move stream that is not one, or announces more device state than allowed, before reading it', async () => {
    for (const [name, bytes, why] of [
      ['bad1', Buffer.from('GET / HTTP/1.1\r\n\r\n'), /not a move stream/],
      ['bad2', Buffer.concat([Buffer.from('MCLMOVE2D'), Buffer.from([0xff, 0xff, 0xff, 0xff])]), /device state of 4294967295 bytes/],
      ['bad3', Buffer.concat([Buffer.from('MCLMOVE2P'), Buffer.from([0x7f, 0xff, 0xff, 0xff])]), /a live round's RAM file of 2147483647 bytes/],
      ['bad4', Buffer.from('MCLMOVE2X'), /a frame of kind "X"/],
    ] as const) {
      const d = await pagesDestination(template, run, name, { src, dst });
      const s = net.createConnection(d.tunnel.socket);
      s.on('error', () => undefined);
      s.write(bytes);
      await expect(d.receiver.loaded).rejects.toThrow(why);
      s.destroy();
      d.tunnel.close();
      d.listener.close();
    }
  }, 120_000);
});
