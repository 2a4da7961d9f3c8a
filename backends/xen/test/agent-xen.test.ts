// The guest agent's Xen mode (backends/kvm/guest/agent.sh with mcl.xen=1 on
// the kernel command line), run on the host in a private mount namespace:
// /proc/cmdline says mcl.xen=1, /run and /dev are fresh tmpfs, and
// /usr/sbin/mcl-vchan is a stand-in for the vchan client (in node) that connects to a
// unix socket of this test per slot instead of dom0's vchan server (same
// arguments, same retrying, same end when the other side closes). It checks
// the FIFO plumbing the real client sits on: the handshake and identity over
// slot 0, a program's line on its port reaching the host end of slot 1, the
// program's exit, and the control client started again after dom0 closed it
// (what parking the template and restoring it does). Needs root (a mount
// namespace); skipped with the reason elsewhere, never in CI.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ControlChannel } from '@mcl/backend-kvm/vm';

const repo = join(import.meta.dirname, '..', '..', '..');
const root = process.getuid?.() === 0;
const tools = ['unshare', 'busybox'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
const why = !root ? 'it needs root for a mount namespace' : tools.length ? `${tools.join(', ')} missing` : '';
if (why && process.env.CI) throw new Error(`the agent's Xen mode test cannot run: ${why}`);
if (why) console.warn(`skipping the agent's Xen mode test: ${why}`);

/** Stand-in for mcl-vchan (node, which every machine running these tests has): data/mcl/pN -> the test's socket pN.sock. */
const FAKE_VCHAN_JS = `
import { connect } from 'node:net';
import { join } from 'node:path';
const path = join(process.env.MCLTEST_SOCKS, process.argv[2].split('/').pop() + '.sock');
const attempt = (n) => {
  const s = connect(path);
  s.once('error', () => (n > 0 ? setTimeout(() => attempt(n - 1), 50) : process.exit(1)));
  s.once('connect', () => {
    process.stdin.pipe(s);
    s.pipe(process.stdout);
    s.once('close', () => process.exit(0));
  });
};
attempt(300);
`;

const work = mkdtempSync(join(tmpdir(), 'mcl-xen-agent-'));
let agent: ChildProcess | null = null;
afterAll(() => {
  if (agent?.pid) {
    try {
      process.kill(-agent.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  rmSync(work, { recursive: true, force: true });
});

/** A unix socket server handing out its connections one by one. */
function server(path: string): { srv: Server; next(): Promise<Socket> } {
  const queue: Socket[] = [];
  const waiting: ((s: Socket) => void)[] = [];
  const srv = createServer((s) => {
    const w = waiting.shift();
    if (w) w(s);
    else queue.push(s);
  }).listen(path);
  return {
    srv,
    next: () => new Promise((r) => (queue.length ? r(queue.shift()!) : waiting.push(r))),
  };
}

describe.skipIf(why !== '')('the guest agent on Xen', () => {
  it('serves its control port and data ports over vchan FIFO pairs, and reconnects after dom0 closed them', async () => {
    const socks = join(work, 's');
    mkdirSync(socks);
    writeFileSync(join(work, 'fake-vchan.mjs'), FAKE_VCHAN_JS);
    writeFileSync(join(work, 'mcl-vchan'), `#!/bin/sh\nexec '${process.execPath}' '${join(work, 'fake-vchan.mjs')}' "$@"\n`);
    chmodSync(join(work, 'mcl-vchan'), 0o755);
    const p0 = server(join(socks, 'p0.sock'));
    const p1 = server(join(socks, 'p1.sock'));
    const setup = [
      'set -e',
      `echo "console=hvc0 mcl.xen=1" > ${work}/cmdline`,
      `mount --bind ${work}/cmdline /proc/cmdline`,
      'mount -t tmpfs tmpfs /run && mkdir -p /run/mcl',
      'mount -t tmpfs tmpfs /dev && mknod /dev/null c 1 3 && mknod /dev/urandom c 1 9 && chmod 666 /dev/null /dev/urandom',
      `touch /dev/console && mkdir -p /dev/mcl`,
      `mount -t tmpfs tmpfs /usr/sbin && cp ${work}/mcl-vchan /usr/sbin/mcl-vchan`,
      `exec busybox sh ${join(repo, 'backends', 'kvm', 'guest', 'agent.sh')} serve`,
    ].join('\n');
    agent = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', setup], { detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, MCLTEST_SOCKS: socks } });
    let stderr = '';
    agent.stderr!.on('data', (b: Buffer) => (stderr += b.toString()).slice(-4000));

    const first = ControlChannel.over(await p0.next());
    await first.handshake(10_000).catch((e) => {
      throw new Error(`${(e as Error).message}; agent stderr: ${stderr}`);
    });
    const exited = new Promise<{ status: number }>((r) => first.once('exit', r));
    const started = await first.sendIdentity(
      {
        instanceId: 'db',
        clone: 0,
        ports: [{ name: 'kv', slot: 1 }],
        program: { argv: ['sh', '-c', 'test -p /dev/mcl/kv.in && echo \'{"t":"notify","op":"hi"}\' >/dev/mcl/kv.out && sleep 0.3 && exit 7'], env: {}, files: [] },
      },
      10_000,
    );
    expect(started.programPid).toBeGreaterThan(0);
    const port = await p1.next();
    const line = await new Promise<string>((r) => {
      let b = '';
      port.on('data', (d: Buffer) => {
        b += d.toString();
        if (b.includes('\n')) r(b.split('\n')[0]);
      });
    });
    expect(line).toBe('{"t":"notify","op":"hi"}');
    expect((await exited).status).toBe(7);

    // dom0 closes the control vchan (as before parking the template): the agent's client ends, is started
    // again, and answers the next host (as after a restore).
    first.close();
    const second = ControlChannel.over(await p0.next());
    await second.handshake(10_000);
    second.close();
    p0.srv.close();
    p1.srv.close();
    port.destroy();
  }, 60_000);
});
