// The guest agent's TCP transport (mcl.transport=tcp, a KubeVirt machine) run
// on the host with busybox: the agent's own functions, with the kernel
// command line and its directories pointed at a temporary directory. A guest
// "program" reads and answers lines on the FIFO pair mcl-msg opens.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const AGENT = join(__dirname, '..', 'guest', 'agent.sh');
const busybox = spawnSync('busybox', ['nc', '--help'], { encoding: 'utf8' });
const haveBusybox = busybox.error === undefined;

let child: ChildProcess | null = null;
let dir = '';
afterEach(() => {
  // The shell and its bridges run in a process group of their own, which only this test made.
  if (child?.pid) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  child = null;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Starts the agent's port of `slot` named `kv` and an echoing program on it; resolves with the slot's TCP port. */
async function startGuest(slots: string, slot: number, identities = 1): Promise<number> {
  dir = mkdtempSync(join(tmpdir(), 'mcl-agent-tcp-'));
  const base = 30000 + Math.floor(Math.random() * 20000);
  writeFileSync(join(dir, 'cmdline'), `console=ttyS0 quiet mcl.transport=tcp mcl.port_base=${base} mcl.slots=${slots}\n`);
  const script = [
    `export MCL_CMDLINE=${dir}/cmdline MCL_PORTS=${dir}/ports MCL_RUN=${dir}/run`,
    'mkdir -p "$MCL_PORTS" "$MCL_RUN"',
    `. ${AGENT} functions`,
    ...Array.from({ length: identities }, () => `link_port ${slot} kv`),
    'echo "err=$err" >"$MCL_RUN/result"',
    // The program: what mcl-msg does with a FIFO pair (open .in, then .out), answering each line.
    '[ -p "$MCL_PORTS/kv.in" ] && exec 5<"$MCL_PORTS/kv.in" 6>"$MCL_PORTS/kv.out" && while read -r l <&5; do echo "re:$l" >&6; done',
    'sleep 60',
  ].join('\n');
  child = spawn('busybox', ['sh', '-c', script], { detached: true, stdio: 'ignore' });
  return base + slot;
}

async function dial(port: number, ms = 5000): Promise<Socket> {
  const t0 = Date.now();
  for (;;) {
    const s = await new Promise<Socket | null>((resolve) => {
      const sock = connect(port, '127.0.0.1');
      sock.once('connect', () => resolve(sock));
      sock.once('error', () => resolve(null));
    });
    if (s) return s;
    if (Date.now() - t0 > ms) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function nextLine(s: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error('no line')), 5000);
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

describe.skipIf(!haveBusybox)('guest agent, mcl.transport=tcp', () => {
  it('bridges the slot\'s TCP port to the FIFO pair; a peer that drops is replaced by the next one, and the program never sees end of file', async () => {
    // The port is named twice (a second identity), which must keep the one bridge serving it.
    const port = await startGuest('0,1,3', 3, 2);
    const a = await dial(port);
    a.write('hello\n');
    expect(await nextLine(a)).toBe('re:hello');
    a.destroy();
    const b = await dial(port);
    b.write('again\n');
    expect(await nextLine(b)).toBe('re:again');
    b.destroy();
  }, 20_000);

  it('accepts one connection at a time', async () => {
    const port = await startGuest('0,1', 1);
    const a = await dial(port);
    a.write('one\n');
    expect(await nextLine(a)).toBe('re:one');
    const refused = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(false);
      });
      s.once('error', () => resolve(true));
    });
    expect(refused).toBe(true);
    a.destroy();
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
