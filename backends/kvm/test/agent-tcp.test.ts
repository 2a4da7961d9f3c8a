// The guest agent's TCP transport (mcl.transport=tcp, a KubeVirt machine) run
// on the host with busybox: the agent's own functions, with the kernel
// command line and its directories pointed at a temporary directory. A guest
// "program" reads and answers lines on the FIFO pair mcl-msg opens.

import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGENT, busyboxAgent, haveBusybox } from './fixtures/busybox-agent';

const guest = busyboxAgent();
let dir = '';

/** The guest's token in these tests (64 hex digits, as the broker derives them). */
export const TOKEN = 'ab'.repeat(32);

/**
 * Starts the agent's port of `slot` named `kv` and an echoing program on it; resolves with the slot's TCP port.
 * The guest knows TOKEN unless `token` is false (then the control port learns it from its first peer).
 */
async function startGuest(slots: string, slot: number, identities = 1, token = true): Promise<number> {
  dir = guest.dir('mcl-agent-tcp-');
  const base = 30000 + Math.floor(Math.random() * 20000);
  writeFileSync(join(dir, 'cmdline'), `console=ttyS0 quiet mcl.transport=tcp mcl.port_base=${base} mcl.slots=${slots}\n`);
  guest.start([
    `export MCL_CMDLINE=${dir}/cmdline MCL_PORTS=${dir}/ports MCL_RUN=${dir}/run MCL_AGENT=${AGENT} MCL_SH='busybox sh'`,
    'mkdir -p "$MCL_PORTS" "$MCL_RUN"',
    `. ${AGENT} functions`,
    token ? `echo ${TOKEN} >"$MCL_RUN/token"` : 'tcp_port_open 0 "$MCL_RUN/ctl"',
    ...Array.from({ length: identities }, () => `link_port ${slot} kv`),
    'echo "err=$err" >"$MCL_RUN/result"',
    // The program: what mcl-msg does with a FIFO pair (open .in, then .out), answering each line.
    '[ -p "$MCL_PORTS/kv.in" ] && exec 5<"$MCL_PORTS/kv.in" 6>"$MCL_PORTS/kv.out" && while read -r l <&5; do echo "re:$l" >&6; done',
    'sleep 60',
  ]);
  return base + slot;
}

async function dial(port: number, ms = 5000, auth: string | null = TOKEN): Promise<Socket> {
  const t0 = Date.now();
  for (;;) {
    const s = await new Promise<Socket | null>((resolve) => {
      const sock = connect(port, '127.0.0.1');
      sock.once('connect', () => resolve(sock));
      sock.once('error', () => resolve(null));
    });
    if (s) {
      if (auth !== null) s.write(`auth ${auth}\n`);
      return s;
    }
    if (Date.now() - t0 > ms) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function nextLine(s: Socket, ms = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error('no line')), ms);
    s.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(t);
        resolve(buf.slice(0, nl));
      }
    });
  });
}

/** Resolves when the peer closes the socket, with what it sent before. */
function closed(s: Socket, ms = 8000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error('still open')), ms);
    s.on('data', (d) => (buf += d.toString()));
    s.once('close', () => {
      clearTimeout(t);
      resolve(buf);
    });
  });
}

/** Sends a line and expects its echo, retrying while the bridge is not up yet. */
async function roundTrip(port: number, text: string): Promise<Socket> {
  const s = await dial(port);
  s.write(`${text}\n`);
  expect(await nextLine(s)).toBe(`re:${text}`);
  return s;
}

describe.skipIf(!haveBusybox('nc'))('guest agent, mcl.transport=tcp', () => {
  it('bridges the slot\'s TCP port to the FIFO pair; a peer that drops is replaced by the next one, and the program never sees end of file', async () => {
    // The port is named twice (a second identity), which must keep the one bridge serving it.
    const port = await startGuest('0,1,3', 3, 2);
    const a = await roundTrip(port, 'hello');
    a.destroy();
    const b = await roundTrip(port, 'again');
    b.destroy();
  }, 20_000);

  it('serves only a peer with the guest\'s token, and the newest such peer replaces the one before', async () => {
    const port = await startGuest('0,1', 1);
    const a = await roundTrip(port, 'one');
    // A second authenticated peer (the broker again, its old connection silent) takes the port over.
    const aClosed = closed(a);
    const b = await roundTrip(port, 'two');
    expect(await aClosed).toBe('');
    // A peer with another token, or none, is dropped without reaching the program.
    const wrong = await dial(port, 5000, 'cd'.repeat(32));
    wrong.write('sneak\n');
    expect(await closed(wrong)).toBe('');
    b.write('three\n');
    expect(await nextLine(b)).toBe('re:three');
    b.destroy();
  }, 30_000);

  it('a hostile program of the guest can neither take the port\'s listener nor keep the broker out by connecting first', async () => {
    const port = await startGuest('0,1', 1);
    const a = await roundTrip(port, 'up');
    a.destroy();
    // Listening on the same port fails: the agent holds it, also between two connections.
    const bind = spawnSync('busybox', ['nc', '-l', '-p', String(port)], { timeout: 3000, encoding: 'utf8' });
    expect(bind.status).not.toBe(0);
    expect(bind.signal).toBeNull();
    // Connecting first and saying nothing (or anything but the token) holds nothing: the broker still gets the port.
    const squatter = await dial(port, 5000, null);
    const squatterClosed = closed(squatter);
    const b = await roundTrip(port, 'broker');
    expect(await squatterClosed).toBe('');
    b.destroy();
  }, 30_000);

  it('a line cut short by a dropped connection is discarded, not joined to the next connection\'s first line', async () => {
    const port = await startGuest('0,1', 1);
    const a = await roundTrip(port, 'first');
    a.end('half a li');
    await closed(a);
    const b = await roundTrip(port, 'whole');
    b.destroy();
  }, 20_000);

  it('the control port learns the token from its first peer and then refuses any other', async () => {
    const port = (await startGuest('0,1', 1, 1, false)) - 1;
    const first = await dial(port, 5000, 'ef'.repeat(32));
    // The control FIFOs have no agent loop in this test; the connection stays open (it was accepted).
    await new Promise((r) => setTimeout(r, 300));
    expect(first.destroyed).toBe(false);
    expect(readFileSync(join(dir, 'run', 'token'), 'utf8')).toBe(`${'ef'.repeat(32)}\n`);
    const other = await dial(port, 5000, 'ab'.repeat(32));
    expect(await closed(other)).toBe('');
    first.destroy();
  }, 20_000);

  it('refuses a slot the kernel command line does not list', async () => {
    await startGuest('0,1', 2);
    const t0 = Date.now();
    let result = '';
    while (Date.now() - t0 < 5000 && !result) {
      try {
        result = readFileSync(join(dir, 'run', 'result'), 'utf8');
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    expect(result).toBe('err=slot 2 is not on the kernel command line (mcl.slots)\n');
  }, 20_000);
});
