// `mclc __kube-broker`: the broker of a kubevirt deployment, the process the
// rendered Deployment `mcl-broker` runs (backends/kubevirt/src/broker-run.ts).
// It reads the plan the Secret `mcl-plan` mounts and checks it as `apply`
// does (digests and policy re-check) before it serves a single frame: the
// Secret is an object anyone with write access to the namespace can edit.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Context } from '../context';
import { CliError, ExitCode, type ExitCodeValue } from '../exit';
import { readPlanDocument } from '../plan-file';
import { verifyPlan } from './lifecycle';

export interface KubeBrokerOptions {
  plan: string;
  guests: string;
  /** The deployment's key (default BROKER_KEY_FILE, where the Deployment mounts Secret mcl-broker-key). */
  key?: string;
  statusPort?: string;
  listen?: string;
  /** `VM:PORT=HOST:PORT,...`: dial these guest ports elsewhere (tests run fake guests on loopback). */
  guestMap?: string;
  /** `HOSTPORT=PORT,...`: listen for these exposures on other ports (0: any free one; tests). */
  portMap?: string;
}

function portNumber(text: string, what: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 0 || n > 65535) throw new CliError(`${what}: ${JSON.stringify(text)} is not a TCP port`, ExitCode.Invalid);
  return n;
}

/** Parses `--guest-map`: every entry `VM:PORT=HOST:PORT`. */
export function parseGuestMap(text: string): Map<string, { host: string; port: number }> {
  const map = new Map<string, { host: string; port: number }>();
  for (const entry of text.split(',').filter(Boolean)) {
    const m = /^([a-z0-9.-]+):(\d+)=([^:=,]+):(\d+)$/.exec(entry);
    if (!m) throw new CliError(`--guest-map: ${JSON.stringify(entry)} is not VM:PORT=HOST:PORT`, ExitCode.Invalid);
    map.set(`${m[1]}:${portNumber(m[2], '--guest-map')}`, { host: m[3], port: portNumber(m[4], '--guest-map') });
  }
  return map;
}

/**
 * Reads the deployment's key: 16 to 4096 bytes of a regular file. Each guest's token is derived from
 * it; without it no guest would serve the broker, so the broker refuses to start rather than serve nothing.
 */
export function readKey(path: string, secret: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new CliError(`cannot read the deployment's key ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, ExitCode.Invalid, `mclc apply creates the Secret ${secret}; with \`mclc render\` create it once: kubectl -n NS create secret generic ${secret} --from-literal=key="$(head -c 32 /dev/urandom | base64)"`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new CliError(`the deployment's key ${path} is not a regular file`, ExitCode.Invalid);
    const buf = Buffer.alloc(4097);
    let n = 0;
    for (let r; n < buf.length && (r = readSync(fd, buf, n, buf.length - n, null)) > 0; ) n += r;
    if (n < 16 || n > 4096) throw new CliError(`the deployment's key ${path} has ${n > 4096 ? 'more than 4096' : n} bytes; it needs 16 to 4096`, ExitCode.Invalid);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

export async function kubeBrokerCommand(ctx: Context, o: KubeBrokerOptions): Promise<ExitCodeValue> {
  const path = resolve(ctx.cwd, o.plan);
  const { plan, text } = readPlanDocument(path, ctx.cwd);
  verifyPlan(ctx, plan, text, path, ctx.env.MCL_PLAN_VERIFY_KEY || undefined);
  if (plan.target.backend !== 'kubevirt') {
    throw new CliError(`${o.plan}: the plan targets the ${plan.target.backend} backend; __kube-broker serves kubevirt deployments only`, ExitCode.Invalid);
  }
  const map = o.guestMap ? parseGuestMap(o.guestMap) : null;
  const ports = new Map<number, number>();
  for (const entry of (o.portMap ?? '').split(',').filter(Boolean)) {
    const m = /^(\d+)=(\d+)$/.exec(entry);
    if (!m) throw new CliError(`--port-map: ${JSON.stringify(entry)} is not HOSTPORT=PORT`, ExitCode.Invalid);
    ports.set(portNumber(m[1], '--port-map'), portNumber(m[2], '--port-map'));
  }
  const { startKubeBroker, BROKER_KEY_FILE, BROKER_KEY_SECRET } = await import('@mcl/backend-kubevirt/broker');
  const key = readKey(resolve(ctx.cwd, o.key ?? BROKER_KEY_FILE), BROKER_KEY_SECRET);
  // One JSON object per line on stdout, which `kubectl logs` shows; each entry is bounded by the broker.
  const log = (e: object) => ctx.out(JSON.stringify({ '@timestamp': new Date().toISOString(), ...e }) + '\n');
  const kb = await startKubeBroker(plan, {
    guests: o.guests,
    key,
    listenHost: o.listen,
    mapHostPort: ports.size ? (p) => ports.get(p) ?? p : undefined,
    statusPort: o.statusPort === undefined ? undefined : portNumber(o.statusPort, '--status-port'),
    dial: map ? (vm, port) => map.get(`${vm}:${port}`) ?? { host: `${vm}.${o.guests}`, port } : undefined,
    log,
  });
  kb.broker.on('violation', (v) => log({ level: 'warn', message: `violation ${v.kind}: ${v.detail}`, violation: v }));
  log({ level: 'info', message: `broker of ${plan.system} serving`, exposures: kb.exposures.map((x) => `${x.address}:${x.bound_port} -> ${x.instance}.${x.port}`), status_port: kb.statusPort });
  await new Promise<void>((done) => {
    const stop = (sig: NodeJS.Signals) => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      log({ level: 'info', message: `${sig} received; closing the exposures and the guests' connections` });
      done();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  const counters = kb.broker.counters();
  await kb.close();
  log({ level: 'info', message: 'broker stopped', counters });
  return ExitCode.Ok;
}
