// The broker of a kubevirt deployment: the process the rendered Deployment
// `mcl-broker` runs (`mclc __kube-broker`). It is the same broker as on KVM
// (@mcl/broker, the same enforcement of every frame); only where a port's
// other end is differs. On KVM a guest port is a QEMU unix socket; here it is
// a TCP listener of the guest on the pod network, at
// `<vm>.mcl-guests.<namespace>.svc:20000+slot`, exactly the names and ports
// the rendered headless Service, VirtualMachines and NetworkPolicies give.
// The broker dials every wired port of every clone and redials with backoff
// (bounded at 2 s between tries, each dial bounded by a connect timeout)
// while the machine boots or after it restarted; it listens for the
// exposures on their host ports, which the exposure Services target; it
// drives every clone's control port as the KVM supervisor does (handshake,
// identity, program start and restarts: ./guest-control.ts); and it answers
// `/ready` on the status port for the Deployment's readiness probe. Every
// connection to a guest begins with `auth <token>`, the guest's token derived
// from the deployment's key, without which the guest's agent serves nothing.

import { createServer, type Server } from 'node:http';
import { Broker, type BrokerLogEntry, type ExposureInfo } from '@mcl/broker';
import type { Plan } from '@mcl/plan';
import { BROKER_STATUS_PORT, GUEST_PORT_BASE, cloneCount, vmName, wiredPorts } from './render';
import { GuestControl, authLine, type GuestControlEvent } from './guest-control';

export { BROKER_KEY_FILE, BROKER_KEY_SECRET } from './render';

/** Where a guest's port is dialled: by default its DNS name in the guests' headless Service. */
export type GuestDialer = (vm: string, port: number) => { host: string; port: number };

export interface KubeBrokerOptions {
  /** The guests' headless Service domain, `mcl-guests.<namespace>.svc`. */
  guests: string;
  /** The deployment's key (Secret `mcl-broker-key`), from which each guest's token is derived. */
  key: Buffer;
  /** Bound of a guest's handshake and identity answers. Default 60 s. */
  controlTimeoutMs?: number;
  /** Program starts and exits of the guests (tests). */
  onGuestEvent?: (e: GuestControlEvent) => void;
  /** Replaces the address of a guest port (tests dial fake guests on 127.0.0.1). */
  dial?: GuestDialer;
  /** Address the exposures and the status port listen on. Default 0.0.0.0 (the pod's addresses). */
  listenHost?: string;
  /** Replaces a plan host port for listening (tests use 0). */
  mapHostPort?: (hostPort: number) => number;
  /** The readiness port; null for none. Default BROKER_STATUS_PORT. */
  statusPort?: number | null;
  /** Each dial gives up after this long and is retried. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** First redial delay in ms (doubles up to 2 s). Default 200. */
  reconnectDelayMs?: number;
  log?: (entry: BrokerLogEntry) => void;
}

export interface KubeBroker {
  broker: Broker;
  exposures: ExposureInfo[];
  /** The bound status port, when there is one. */
  statusPort: number | null;
  close(): Promise<void>;
}

/** Starts the broker of a verified plan: dials every guest port, listens for the exposures. */
export async function startKubeBroker(plan: Plan, options: KubeBrokerOptions): Promise<KubeBroker> {
  const log = options.log ?? (() => undefined);
  const broker = new Broker(plan, {
    log,
    exposureHost: options.listenHost ?? '0.0.0.0',
    mapHostPort: options.mapHostPort,
    reconnectDelayMs: options.reconnectDelayMs ?? 200,
  });
  const dial: GuestDialer = options.dial ?? ((vm, port) => ({ host: `${vm}.${options.guests}`, port }));
  // The ports the rendered policies open towards a guest: a port on a channel or an exposure, and the
  // control port (slot 0), which is not a broker port but the guest's control client's.
  const controls: GuestControl[] = [];
  for (const inst of plan.instances) {
    const ports = wiredPorts(inst);
    for (let k = 0; k < cloneCount(inst); k++) {
      const vm = vmName(inst, k);
      const greeting = authLine(options.key, vm);
      for (const p of ports) {
        const to = dial(vm, GUEST_PORT_BASE + p.slot);
        // Not awaited: a port connects when its guest is up, which may be long after the broker.
        void broker.attachPort(inst.id, k, p.name, { host: to.host, port: to.port, connectTimeoutMs: options.connectTimeoutMs ?? 5000, greeting });
      }
      const ctl = dial(vm, GUEST_PORT_BASE);
      controls.push(
        new GuestControl(inst, k, vm, {
          key: options.key,
          host: ctl.host,
          port: ctl.port,
          connectTimeoutMs: options.connectTimeoutMs ?? 5000,
          reconnectDelayMs: options.reconnectDelayMs ?? 200,
          answerTimeoutMs: options.controlTimeoutMs,
          log,
          onEvent: options.onGuestEvent,
        }),
      );
    }
  }
  for (const c of controls) c.start();
  let status: Server | null = null;
  let statusPort: number | null = null;
  try {
    const exposures = await broker.listenExposures();
    const wanted = options.statusPort === undefined ? BROKER_STATUS_PORT : options.statusPort;
    if (wanted !== null) {
      // Ready once the exposures listen: a guest still booting is the broker's to wait for (its
      // calls fail as `unavailable` meanwhile), not a reason to take the exposures' Service away.
      status = createServer((req, res) => {
        const ok = req.url === '/ready' || req.url === '/healthz';
        res.writeHead(ok ? 200 : 404, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'not found\n');
      });
      const s = status;
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(wanted, options.listenHost ?? '0.0.0.0', () => resolve());
      });
      const addr = s.address();
      statusPort = typeof addr === 'object' && addr ? addr.port : wanted;
    }
    return {
      broker,
      exposures,
      statusPort,
      async close() {
        await new Promise<void>((resolve) => (status ? status.close(() => resolve()) : resolve()));
        status?.closeAllConnections();
        for (const c of controls) c.close();
        await broker.close();
      },
    };
  } catch (e) {
    status?.close();
    for (const c of controls) c.close();
    await broker.close();
    throw e;
  }
}
