// The tunnel a live migration's stream takes between two hosts: TLS where
// each end accepts only the other's pinned certificate (made for the
// deployment), and nothing reaches the destination QEMU's socket otherwise.

import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeLinkIdentity, type LinkIdentity } from '@mcl/broker';
import { dialMigration, listenMigration } from '../src/vm/migrate';

let a: LinkIdentity;
let b: LinkIdentity;
let c: LinkIdentity;
let dir: string;
const closers: (() => void)[] = [];

beforeAll(() => {
  [a, b, c] = ['node1', 'node2', 'intruder'].map((n) => makeLinkIdentity(n));
}, 60_000);

afterEach(() => {
  for (const f of closers.splice(0)) f();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A unix socket standing for the destination QEMU's incoming socket: records what arrives and answers "ok". */
async function fakeQemu(file: string): Promise<{ received: () => string }> {
  let got = '';
  const server = net.createServer((s) => {
    s.on('data', (d) => {
      got += d.toString();
      s.write('ok');
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(file, r));
  closers.push(() => server.close());
  return { received: () => got };
}

async function roundTrip(socket: string, text: string): Promise<string> {
  const s = net.createConnection(socket);
  s.on('error', () => undefined);
  s.write(text);
  return new Promise((resolve) => {
    let got = '';
    s.on('data', (d) => (got += d.toString()));
    s.on('close', () => resolve(got));
    setTimeout(() => {
      s.destroy();
      resolve(got);
    }, 1_000);
  });
}

describe('migration tunnel', () => {
  it('carries the stream both ways between the pinned hosts and counts its bytes', async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'mcl-tun-'));
    const qemu = await fakeQemu(path.join(dir, 'in.sock'));
    const l = await listenMigration({ key: b.key, cert: b.cert, peerCert: a.cert }, path.join(dir, 'in.sock'), { host: '127.0.0.1', port: 0 });
    closers.push(l.close);
    const t = await dialMigration({ key: a.key, cert: a.cert, peerCert: b.cert }, path.join(dir, 'out.sock'), { host: '127.0.0.1', port: l.port });
    closers.push(t.close);
    expect(await roundTrip(path.join(dir, 'out.sock'), 'state')).toBe('ok');
    expect(qemu.received()).toBe('state');
    expect(t.bytes()).toBe(5);
    expect(l.bytes()).toBe(5);
  });

  it('refuses a host whose certificate is not the pinned one: nothing reaches QEMU', async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'mcl-tun-'));
    const qemu = await fakeQemu(path.join(dir, 'in.sock'));
    const logs: string[] = [];
    const l = await listenMigration({ key: b.key, cert: b.cert, peerCert: a.cert }, path.join(dir, 'in.sock'), { host: '127.0.0.1', port: 0 }, (s) => logs.push(s));
    closers.push(l.close);
    const t = await dialMigration({ key: c.key, cert: c.cert, peerCert: b.cert }, path.join(dir, 'out.sock'), { host: '127.0.0.1', port: l.port });
    closers.push(t.close);
    expect(await roundTrip(path.join(dir, 'out.sock'), 'forged')).toBe('');
    expect(qemu.received()).toBe('');
    expect(logs.join('\n')).toMatch(/refused/);
  });

  it('does not send the stream to a destination that is not the pinned one', async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'mcl-tun-'));
    const qemu = await fakeQemu(path.join(dir, 'in.sock'));
    // An impostor listening where the destination should be, with its own certificate.
    const l = await listenMigration({ key: c.key, cert: c.cert, peerCert: a.cert }, path.join(dir, 'in.sock'), { host: '127.0.0.1', port: 0 });
    closers.push(l.close);
    const t = await dialMigration({ key: a.key, cert: a.cert, peerCert: b.cert }, path.join(dir, 'out.sock'), { host: '127.0.0.1', port: l.port });
    closers.push(t.close);
    expect(await roundTrip(path.join(dir, 'out.sock'), 'state')).toBe('');
    expect(qemu.received()).toBe('');
    expect((await t.failed).message).toMatch(/pinned|certificate/);
  });
});
