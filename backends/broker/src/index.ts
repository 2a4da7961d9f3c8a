// @mcl/broker: the host-side channel broker.
//
// Every channel of a plan ends in this broker. Guests reach each other only
// through it: each guest data port is a virtio-serial port whose host end is a
// unix socket, and the broker relays line-delimited JSON frames between the
// ports that the plan wires together, enforcing each channel's invariants
// (direction, operation, schema, size, rate, order, in-flight calls, timeout).
// What the plan does not wire cannot talk. The frame format and the socket
// roles are specified in spec/broker.md.
//
// Typical use by the KVM supervisor:
//
//   const broker = new Broker(plan, {
//     log: (e) => writeLog(e),
//     onSessionOpen: async (instance) => { const idx = await forkClone(instance); return idx; },
//     onSessionClose: async (instance, idx) => { await disposeClone(instance, idx); },
//   });
//   broker.on('violation', (v) => ...);
//   // For every clone, after QEMU has created its chardev sockets
//   // (`-chardev socket,id=p1,path=...,server=on,wait=off`), attach each data port:
//   broker.attachPort('db', 0, 'kv', '/run/mcl/dep/db.0.kv.sock');
//   await broker.listenExposures();
//   ...
//   broker.detachClone('db', 0);          // the clone died or was replaced
//   broker.counters(); broker.violations();
//   await broker.close();

export { Broker, MAX_HELD_BYTES } from './broker';
export type {
  BrokerCheckpoint,
  BrokerEvents,
  BrokerLogEntry,
  BrokerOptions,
  ChannelCounters,
  ExposureInfo,
  PortStatus,
  PortTarget,
  Violation,
  ViolationKind,
} from './types';
export { compileSchema, type Validator } from './schema';
export { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits, type ConnectionStats } from './connections';
export { exposureId, isHttpProtocol, HTTP_PROTOCOL } from './http';
export { Links, makeLinkIdentity, certFingerprint, parseLinkConfig, LINK_CONFIG_FILE, planPlacement, LINK_MAX_PAYLOAD, type LinkIdentity, type LinkPeer, type LinkOptions, type LinkStatus, type LinkRefusal } from './link';
