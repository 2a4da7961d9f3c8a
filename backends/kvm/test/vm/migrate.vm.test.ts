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
import { makeLinkIdentity } from '@mcl/broker';
import { connectUnix, forkClone, type Clone, type Template } from '../../src/vm/index';
import { dialMigration, listenMigration, migrateClone, startIncoming, type MigrationIdentity } from '../../src/vm/migrate';
import { testTemplate } from '../fixtures/vm';

const cacheDir = process.env.MCL_CACHE_DIR ?? path.join(os.tmpdir(), 'mcl-vm-test-cache');
let template: Template;
let run: string;
const clones: Clone[] = [];
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

async function destination(name: string) {
  const incoming = path.join(run, `${name}.in`);
  const dest = await startIncoming(
    template,
    { name, controlSocket: path.join(run, `${name}.ctl`), dataPortSockets: [path.join(run, `${name}.p1`)], logFile: path.join(run, `${name}.log`), readyTimeoutMs: 60_000 },
    incoming,
  );
  const listener = await listenMigration(dst, incoming, { host: '127.0.0.1', port: 0 });
  const tunnel = await dialMigration(src, path.join(run, `${name}.out`), { host: '127.0.0.1', port: listener.port });
  return { dest, listener, tunnel: { ...tunnel, socket: path.join(run, `${name}.out`) } };
}

beforeAll(async () => {
  run = await mkdtemp(path.join(os.tmpdir(), 'mcl-mig-'));
  template = await testTemplate(cacheDir);
  const a = makeLinkIdentity('node1');
  const b = makeLinkIdentity('node2');
  src = { key: a.key, cert: a.cert, peerCert: b.cert };
  dst = { key: b.key, cert: b.cert, peerCert: a.cert };
}, 300_000);

afterAll(async () => {
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
});
