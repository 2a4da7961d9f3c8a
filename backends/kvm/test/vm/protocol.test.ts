// The QMP client and the control channel against fake peers on unix sockets (no VM).

import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CONTROL_MAX_LINE_BYTES, ControlChannel } from '../../src/vm/control';
import { QMP_MAX_LINE_BYTES, QmpClient, QmpError } from '../../src/vm/qmp';
import { flood } from '../fixtures/flood';

let dir: string;
let server: net.Server | null = null;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'mcl-proto-'));
});
afterEach(async () => {
  server?.close();
  server = null;
  await rm(dir, { recursive: true, force: true });
});

/** Serves one connection with a line handler; returns the socket path. */
function serve(onConnect: (sock: net.Socket, line: (fn: (l: string) => void) => void) => void): string {
  const p = path.join(dir, 's');
  server = net.createServer((sock) => {
    let buf = '';
    let handler: (l: string) => void = () => undefined;
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const l = buf.slice(0, i);
        buf = buf.slice(i + 1);
        handler(l);
      }
    });
    onConnect(sock, (fn) => (handler = fn));
  });
  server.listen(p);
  return p;
}

describe('QmpClient', () => {
  it('negotiates, matches responses by id out of order, and emits events', async () => {
    const p = serve((sock, onLine) => {
      sock.write(JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 } }, capabilities: [] } }) + '\n');
      const held: { id: string }[] = [];
      onLine((l) => {
        const m = JSON.parse(l) as { execute: string; id: string };
        if (m.execute === 'qmp_capabilities') return void sock.write(JSON.stringify({ return: {}, id: m.id }) + '\n');
        if (m.execute === 'slow') return void held.push(m);
        if (m.execute === 'fast') {
          sock.write(JSON.stringify({ event: 'STOP', data: {} }) + '\n');
          sock.write(JSON.stringify({ return: 'fast', id: m.id }) + '\n');
          for (const h of held) sock.write(JSON.stringify({ return: 'slow', id: h.id }) + '\n');
          return;
        }
        sock.write(JSON.stringify({ error: { class: 'CommandNotFound', desc: `The command ${m.execute} has not been found` }, id: m.id }) + '\n');
      });
    });
    const q = await QmpClient.connect(p, { timeoutMs: 2_000 });
    expect(q.version).toEqual({ major: 7, minor: 2, micro: 22 });
    const stop = q.waitEvent('STOP', () => true, 2_000);
    const slow = q.execute('slow');
    const fast = q.execute('fast');
    expect(await fast).toBe('fast');
    expect(await slow).toBe('slow');
    expect((await stop).event).toBe('STOP');
    await expect(q.execute('nope')).rejects.toMatchObject({ errorClass: 'CommandNotFound' });
    q.close();
  });

  it('times out a command with no response and fails pending commands on close', async () => {
    let peer: net.Socket | null = null;
    const p = serve((sock, onLine) => {
      peer = sock;
      sock.write(JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 } } } }) + '\n');
      onLine((l) => {
        const m = JSON.parse(l) as { execute: string; id: string };
        if (m.execute === 'qmp_capabilities') sock.write(JSON.stringify({ return: {}, id: m.id }) + '\n');
      });
    });
    const q = await QmpClient.connect(p);
    await expect(q.execute('hang', undefined, 100)).rejects.toBeInstanceOf(QmpError);
    const pending = q.execute('hang', undefined, 5_000);
    peer!.destroy();
    await expect(pending).rejects.toMatchObject({ errorClass: 'Closed' });
  });

  it('closes the connection on a message longer than its cap instead of buffering it', async () => {
    let flooded: Promise<number> | null = null;
    const p = serve((sock, onLine) => {
      sock.write(JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 } } } }) + '\n');
      onLine((l) => {
        const m = JSON.parse(l) as { execute: string; id: string };
        if (m.execute === 'qmp_capabilities') sock.write(JSON.stringify({ return: {}, id: m.id }) + '\n');
        else flooded = flood(sock, 64 * 1024 * 1024);
      });
    });
    const q = await QmpClient.connect(p);
    await expect(q.execute('query-status', undefined, 20_000)).rejects.toMatchObject({
      errorClass: 'Closed',
      message: expect.stringContaining(`more than ${QMP_MAX_LINE_BYTES} bytes`),
    });
    expect(q.closed).toBe(true);
    // The peer was cut off soon after the cap, not after all it had to send.
    expect(await flooded!).toBeLessThan(16 * 1024 * 1024);
  });
});

describe('ControlChannel', () => {
  it('repeats hello until the agent answers (the first lines are lost)', async () => {
    let hellos = 0;
    const p = serve((sock, onLine) =>
      onLine((l) => {
        const [cmd, arg] = l.split(' ');
        // A freshly resumed guest may miss lines while it still sees the port closed.
        if (cmd === 'hello' && ++hellos >= 3) sock.write(`ready ${arg}\n`);
      }),
    );
    const c = await ControlChannel.connect(p);
    await c.handshake(5_000, 20);
    expect(hellos).toBeGreaterThanOrEqual(3);
    c.close();
  });

  it('sends an identity as base64 lines and reports the program exit', async () => {
    const seen: string[] = [];
    const p = serve((sock, onLine) =>
      onLine((l) => {
        seen.push(l);
        const [cmd, n] = l.split(' ');
        if (cmd === 'start') {
          sock.write(`started ${n} 42\n`);
          sock.write('exit 42 3\n');
        }
      }),
    );
    const c = await ControlChannel.connect(p);
    const exit = new Promise((r) => c.once('exit', r));
    const r = await c.sendIdentity({
      instanceId: 'shop.app',
      clone: 2,
      seed: Buffer.from('seed'),
      ports: [{ name: 'db', slot: 1 }],
      program: { argv: ['/bin/sh', '-c', 'echo "a b"'], env: { B: '2', A: '1' }, files: [{ path: '/x y', content: 'line\n', mode: '0644' }] },
    });
    expect(r.programPid).toBe(42);
    expect(await exit).toEqual({ pid: 42, status: 3 });
    const b = (s: string) => Buffer.from(s).toString('base64');
    expect(seen).toEqual([
      'reset',
      `instance ${b('shop.app')} 2`,
      `hostname ${b('shop-app-2')}`,
      `seed ${b('seed')}`,
      'port 1 db',
      `file ${b('/x y')} 0644 ${b('line\n')}`,
      `env ${b('A=1')}`,
      `env ${b('B=2')}`,
      `arg ${b('/bin/sh')}`,
      `arg ${b('-c')}`,
      `arg ${b('echo "a b"')}`,
      `start ${seen.at(-1)!.split(' ')[1]}`,
    ]);
    c.close();
  });

  it('refuses names that cannot become device links or variables', async () => {
    const p = serve(() => undefined);
    const c = await ControlChannel.connect(p);
    await expect(c.sendIdentity({ instanceId: 'a', ports: [{ name: '../etc', slot: 1 }] })).rejects.toThrow(/cannot be a device name/);
    await expect(c.sendIdentity({ instanceId: 'a', ports: [], program: { argv: ['x'], env: { 'A-B': '1' }, files: [] } })).rejects.toThrow(/not valid/);
    c.close();
  });

  it('surfaces an agent error with its decoded message', async () => {
    const p = serve((sock, onLine) =>
      onLine((l) => {
        const [cmd, n] = l.split(' ');
        if (cmd === 'commit') sock.write(`error ${n} ${Buffer.from('no virtio-serial port for slot 9 (x)').toString('base64')}\n`);
      }),
    );
    const c = await ControlChannel.connect(p);
    await expect(c.sendIdentity({ instanceId: 'a', ports: [{ name: 'x', slot: 9 }] })).rejects.toThrow(/slot 9/);
    c.close();
  });

  it('closes the channel on a guest line longer than its cap, saying why', async () => {
    let flooded: Promise<number> | null = null;
    const p = serve((sock, onLine) =>
      onLine((l) => {
        if (l.startsWith('hello') && !flooded) flooded = flood(sock, 64 * 1024 * 1024);
      }),
    );
    const c = await ControlChannel.connect(p);
    await expect(c.handshake(20_000, 5_000)).rejects.toThrow(`closed while waiting for hello: the guest agent sent a line of more than ${CONTROL_MAX_LINE_BYTES} bytes`);
    expect(c.closed).toBe(true);
    expect(await flooded!).toBeLessThan(16 * 1024 * 1024);
  });
});
