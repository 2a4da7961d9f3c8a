// The control agent of the nested-Xen test bed, run by busybox init in dom0
// with the host's node binary (respawned if it exits).
//
// It serves the host over the virtio-serial port named org.mcl.nx.ctl, one
// JSON object per line each way (spec/xen-testing.md, "Control path"):
//   agent -> host  {"t":"ready","uptime_s":N}        once, when it starts
//   host -> agent  {"id":N,"op":"exec","argv":[...],"env":{},"cwd":"/","stdin":"","timeoutMs":N}
//                  {"id":N,"op":"put","path":"/abs","mode":420,"data":"<base64>"}
//                  {"id":N,"op":"forward","port":P}
//   agent -> host  {"id":N,"ok":true,...} or {"id":N,"ok":false,"error":"..."}
// "exec" answers with code, signal, stdout and stderr (each capped, with a
// truncated flag); on its timeout the command's process group is killed.
// "forward" relays TCP connections to the dom0 address 10.0.2.15:P (where the
// host's QEMU forwards a 127.0.0.1 port) to 127.0.0.1:P in dom0, so the
// deployments under test keep their exposures on dom0's loopback.
//
// Nothing the host sends is trusted further than the test bed needs: lines
// are capped, and an unparsable line is answered with an error.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const PORT_NAME = 'org.mcl.nx.ctl';
const MAX_LINE = 48 * 1024 * 1024;
const MAX_OUTPUT = 1024 * 1024;
const MAX_RELAYS = 64;
const FORWARD_ADDRESS = '10.0.2.15';

// busybox init starts the agent with its own default PATH; commands run from here find the Xen tools too.
process.env.PATH = '/usr/lib/xen-4.17/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
process.env.HOME = '/root';

function findPort() {
  const dir = '/sys/class/virtio-ports';
  for (const d of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    let name = '';
    try {
      name = fs.readFileSync(path.join(dir, d, 'name'), 'utf8').trim();
    } catch {
      continue;
    }
    if (name === PORT_NAME) return `/dev/${d}`;
  }
  return null;
}

const dev = findPort();
if (!dev) {
  console.log(`nx-dom0: no virtio-serial port ${PORT_NAME}`);
  // busybox init respawns the agent; a pause keeps a missing port from spinning.
  setTimeout(() => process.exit(1), 5000);
} else {
  serve(dev);
}

function serve(devPath) {
  const fd = fs.openSync(devPath, 'r+');
  let writing = Promise.resolve();
  const send = (obj) => {
    const buf = Buffer.from(JSON.stringify(obj) + '\n');
    writing = writing.then(
      () =>
        new Promise((resolve) => {
          const step = (off) => {
            if (off >= buf.length) return resolve();
            fs.write(fd, buf, off, buf.length - off, null, (err, n) => (err ? resolve() : step(off + n)));
          };
          step(0);
        }),
    );
  };
  let pending = [];
  let pendingBytes = 0;
  const onLine = (line) => {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      send({ id: null, ok: false, error: 'not JSON' });
      return;
    }
    handle(msg)
      .then((r) => send({ id: msg.id, ok: true, ...r }))
      .catch((e) => send({ id: msg.id, ok: false, error: String(e && e.message ? e.message : e) }));
  };
  const buf = Buffer.alloc(65536);
  const readMore = () =>
    fs.read(fd, buf, 0, buf.length, null, (err, n) => {
      if (err || n === 0) {
        // The host closed its end: exit, and init starts a fresh agent.
        process.exit(err ? 1 : 0);
      }
      let chunk = buf.subarray(0, n);
      for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10)) {
        pending.push(Buffer.from(chunk.subarray(0, i)));
        const line = Buffer.concat(pending).toString('utf8');
        pending = [];
        pendingBytes = 0;
        chunk = chunk.subarray(i + 1);
        onLine(line);
      }
      if (chunk.length > 0) {
        pendingBytes += chunk.length;
        if (pendingBytes > MAX_LINE) {
          pending = [];
          pendingBytes = 0;
          send({ id: null, ok: false, error: `line longer than ${MAX_LINE} bytes` });
        } else {
          pending.push(Buffer.from(chunk));
        }
      }
      readMore();
    });
  readMore();
  send({ t: 'ready', uptime_s: Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]) });
}

async function handle(msg) {
  switch (msg.op) {
    case 'exec':
      return exec(msg);
    case 'put': {
      if (typeof msg.path !== 'string' || !msg.path.startsWith('/')) throw new Error('put needs an absolute path');
      fs.mkdirSync(path.dirname(msg.path), { recursive: true });
      fs.writeFileSync(msg.path, Buffer.from(String(msg.data ?? ''), 'base64'), { mode: Number(msg.mode ?? 0o644) });
      return {};
    }
    case 'forward':
      return forward(Number(msg.port));
    default:
      throw new Error(`unknown op ${JSON.stringify(msg.op)}`);
  }
}

function exec(msg) {
  return new Promise((resolve, reject) => {
    if (!Array.isArray(msg.argv) || msg.argv.length === 0) return reject(new Error('exec needs argv'));
    const child = spawn(String(msg.argv[0]), msg.argv.slice(1).map(String), {
      cwd: msg.cwd || '/',
      env: { ...process.env, ...(msg.env || {}) },
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group, so a timeout kills what it started too.
      detached: true,
    });
    const out = { stdout: [], stderr: [], outBytes: 0, errBytes: 0, truncated: false };
    const collect = (which, counter) => (d) => {
      const room = MAX_OUTPUT - out[counter];
      if (room <= 0) return void (out.truncated = true);
      if (d.length > room) out.truncated = true;
      out[which].push(d.subarray(0, room));
      out[counter] += Math.min(room, d.length);
    };
    child.stdout.on('data', collect('stdout', 'outBytes'));
    child.stderr.on('data', collect('stderr', 'errBytes'));
    child.stdin.on('error', () => {});
    child.stdin.end(msg.stdin ?? '');
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }, Number(msg.timeoutMs) || 60000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    // 'exit' rather than 'close': a daemon the command leaves behind may hold the pipes open.
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      setTimeout(() => {
        resolve({
          code,
          signal,
          timedOut,
          truncated: out.truncated,
          stdout: Buffer.concat(out.stdout).toString('utf8'),
          stderr: Buffer.concat(out.stderr).toString('utf8'),
        });
      }, 50);
    });
  });
}

const forwards = new Map();
let relays = 0;

function forward(port) {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`bad port ${port}`);
  if (forwards.has(port)) return Promise.resolve({});
  return new Promise((resolve, reject) => {
    const server = net.createServer((c) => {
      if (relays >= MAX_RELAYS) return c.destroy();
      relays++;
      const u = net.connect(port, '127.0.0.1');
      const done = () => {
        c.destroy();
        u.destroy();
      };
      let counted = true;
      const release = () => {
        if (counted) relays--;
        counted = false;
      };
      c.on('close', release);
      c.on('error', done);
      u.on('error', done);
      c.pipe(u);
      u.pipe(c);
    });
    server.once('error', reject);
    server.listen(port, FORWARD_ADDRESS, () => {
      forwards.set(port, server);
      resolve({});
    });
  });
}
