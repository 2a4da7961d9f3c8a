// The VM substrate of the KVM backend: images, templates, copy-on-write
// clones, the guest control channel, QMP, the accelerator probe, memory
// accounting and doctor data.
//
// Typical use by the lifecycle code:
//
//   const image = await buildImage(plan.images[0]);                 // cached by content
//   const tpl = await ensureTemplate({ id, image, memoryBytes, vcpus, portSlots }); // cached on disk
//   const clone = await forkClone(tpl, {
//     name: 'shop.app#0',
//     controlSocket: '/run/.../app-0.ctl',
//     dataPortSockets: ['/run/.../app-0.p1', '/run/.../app-0.p2'],   // slot 1, slot 2
//     logFile: '/run/.../app-0.log',
//   });                                                             // resolves once the agent answered
//   await clone.sendIdentity({ instanceId: 'shop.app', clone: 0, ports, program });
//   clone.control.on('exit', ({ status }) => ...);                  // the program ended
//   clone.exited.then(...);                                         // QEMU ended
//   await clone.kill();
//
// Socket roles: QEMU listens on every port socket (`server=on,wait=off`); the
// broker connects to data ports as a client and may reconnect at any time (for
// example after a clone was replaced at the same path). Until a client is
// connected, guest writes to the port block and reads see end-of-file.
// Inside the guest each data port appears as /dev/mcl/<port name> once the
// identity was sent; spec/guest.md documents the control protocol.
//
// Process ownership: QEMU processes are children of the calling process and
// are killed when it exits normally or on a signal it can handle. After an
// uncatchable end (SIGKILL) clones forked directly keep running; pass
// `pidFile` to forkClone and reconcile from it (with the process start time)
// when the owner restarts. Processes of a ClonePool (and clones taken from
// it) carry a parent-death signal and die with their owner; where the pool
// forks them from the template's zygote, they are the zygote's children, it
// reports their exits, and they die with it as it dies with its owner.
// Socket paths must fit a unix socket address (107 bytes).

export type {
  AccelName,
  AccelProbe,
  BuildImageOptions,
  BuiltImage,
  CacheOptions,
  Clone,
  CloneExit,
  CloneOptions,
  DoctorCheck,
  DoctorReport,
  GuestIdentity,
  ImageSpec,
  MachineType,
  MemoryUsage,
  Template,
  TemplateOptions,
  TemplateSpec,
} from './types';

/** QMP client (JSON over a unix socket): commands matched by id, events, timeouts. */
export { QmpClient, QmpError, connectUnix, type QmpEvent, type QmpConnectOptions } from './qmp';

/** Host end of the control port: handshake, ping, identity, program exit events. */
export { ControlChannel, ControlError, type ProgramExit } from './control';

/**
 * Builds (or takes from the cache) the reproducible initramfs of an image:
 * busybox-static, the virtio modules, the guest agent, the broker's guest tools.
 * Building twice gives identical bytes; the second build is a cache hit.
 */
export { buildImage, resolveKernel } from '../image/index';

/**
 * `ensureTemplate(spec, options)`: returns the cached template for the spec or
 * cold-boots one, waits for the agent, stops it and saves its device state.
 * `removeTemplate(template)` deletes its files (no clone may be running).
 * `pruneTemplates()` deletes superseded builds no running clone maps (also run
 * after every template build, since template RAM occupies tmpfs).
 */
export { ensureTemplate, removeTemplate, listTemplates, pruneTemplates } from './template';

/**
 * `forkClone(template, options)`: starts a copy-on-write clone of the template
 * and resolves once its agent answered the control handshake (retried).
 */
export { forkClone } from './clone';

/**
 * `new ClonePool(template, { dir, size })`: QEMU processes started ahead of
 * time for clones of `template` (the template state loaded, no guest code
 * run); `pool.fill()` starts them, `pool.take(options)` makes a clone of one
 * (renaming its sockets and files to `options`' paths, then the cont and
 * handshake of forkClone) and starts a replacement, `pool.close()`
 * kills the waiting ones. Pooled processes die with the thread that started
 * them (a parent-death signal).
 */
export { ClonePool, type ClonePoolOptions } from './pool';

/**
 * `Zygote.start(...)`: a QEMU process per template, stopped after the dynamic
 * linker relocated it and before QEMU runs, that forks the processes of its
 * clones so they share the relocated pages (ClonePool uses it).
 * `buildZygoteLib()` builds its preloaded library with the host's C compiler.
 */
export { Zygote, ZygoteError, buildZygoteLib, zygoteEnabled, type ZygoteChild } from './zygote';

/**
 * `probeAccelerator()`: a short KVM boot with a timeout; `tcg` with a reason
 * when KVM is missing or hangs. Cached per host boot.
 */
export { probeAccelerator } from './accel';

/** `readMemory(pid)`: RSS, PSS, private and shared bytes from /proc/<pid>/smaps_rollup; `readMappingPrivate(pid, template.memPath)`: guest pages a clone copied on write. */
export { readMemory, readCpuMs, readMappingPrivate } from './memory';

/** `doctor()`: QEMU, kernel, busybox, /dev/kvm, accelerator, vhost-vsock, cache and shm directories. */
export { doctor } from './doctor';

/** Cache and runtime directories (`$MCL_CACHE_DIR`, `$MCL_SHM_DIR`). */
export { cacheDir, shmDir, findQemu, mclHome } from './paths';
export { buildC, CBuildError, findCompiler, type CBuild } from './cc';
