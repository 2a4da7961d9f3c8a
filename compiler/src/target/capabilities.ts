// What each backend can realise. The compiler reports MCL0601 when a plan
// needs something its target's backend cannot do, instead of letting the
// backend fail half-way through an apply.
//
// KVM (backends/kvm): templates are cold-booted QEMU guests whose RAM lives in
// a memory-backend-file; clones restore from it copy-on-write, so replicas and
// per-session forks (one fresh clone per accepted connection) are both cheap.
// Ports are virtio-serial ports spread over up to four virtio-serial devices
// of 30 ports each (backends/kvm/src/vm/qemu.ts, MAX_DATA_PORT_SLOTS: 119
// slots besides the control port); a template has one slot more than the plan's
// port_slots, so a component has up to 118 ports. A guest finds its ports by
// name, whatever device carries them.
//
// Xen (backends/xen): templates are PVH domains booted once and parked;
// instances are copy-on-write forks of the parked template (xc_memshr_fork,
// on Intel VT-x hosts with a hypervisor built with memory sharing) or
// restores of its saved image elsewhere. Per-session forks work either way:
// a fork is about a millisecond plus the guest's resume, a restore is slower
// (`apply` warns which one the host does). Ports are vchans to dom0, one per
// slot, in the same 31-slot layout, so templates stay portable. A PVH guest
// could have 128 vCPUs (HVM_MAX_VCPUS), more than the 64 a component may ask
// for (MCL0412), so the limit is the same. What stays different is at run
// time, not in the plan: the instance path (fork or restore) and whether the
// hypervisor enforces the plan's FLASK policy.
//
// KubeVirt (backends/kubevirt, spec/kubevirt.md): every clone is a
// VirtualMachine booted from a container image; KubeVirt has no copy-on-write
// fork, so there are no per-session forks and no pages shared between clones
// (each pod requests its guest's full memory, which the resource check then
// counts). A guest's ports are TCP connections to the broker's Service, one
// broker port per guest port; the same 31-slot layout keeps the guest image
// the KVM backend builds usable. Exposures are Services. A kernel at a path
// of the planning host does not exist on the cluster's nodes.

import type { BackendName } from '@mcl/plan';

/**
 * The least guest memory the KVM backend's template boots in: the Debian
 * cloud kernel, its virtio modules and the busybox initramfs (unpacked into
 * RAM) with the guest agent. Measured by booting templates under QEMU 7.2
 * (TCG, machine pc, one vCPU) and forking a clone that runs a shell: with
 * 72MiB and less the kernel panics, out of memory while it unpacks the
 * initramfs; 73MiB boots and forks. 80MiB leaves the agent and a small
 * program room to run. An image with more files needs more.
 */
const MIN_GUEST_MEMORY = 80 * 1024 * 1024;

/**
 * What each virtio-serial port costs a KVM guest, and what the guest needs
 * besides its ports: the Linux driver fills each port's 128-entry receive
 * queue with pages when it finds the port (half a MiB per port, the control
 * port included). Measured on the test template (spec/guest.md): 40 ports and
 * the control port did not boot in 80MiB and did in 96MiB, 118 and the
 * control port booted in 128MiB; 68MiB besides the ports fits all three, and
 * MIN_GUEST_MEMORY alone still holds for up to 23 ports.
 */
const PORT_BUFFER_BYTES = 512 * 1024;
const MEMORY_BESIDES_PORTS = 68 * 1024 * 1024;

export interface BackendCapabilities {
  /** `per session` instances: a fresh fork per session. */
  perSession: boolean;
  /** `replicas N` with N > 1. */
  replicas: boolean;
  /** Factory ports: instances forked at run time at a creator's request (`created by`). */
  factories: boolean;
  /** Host TCP ports relayed into provided ports. */
  exposures: boolean;
  /** Ports per guest including the control port. */
  maxPortSlots: number;
  /** vCPUs of one guest. */
  maxVcpus: number;
  /** The least memory a guest of the stock image boots in (see MIN_GUEST_MEMORY). */
  minMemoryBytes: number;
  /** When each port costs guest memory (KVM's virtio-serial): what a port costs and what the guest needs besides its ports (see PORT_BUFFER_BYTES). */
  portMemory?: { perPortBytes: number; besidesBytes: number };
  /** A kernel given as an absolute host path (instead of the distribution's cloud kernel). */
  customKernel: boolean;
  /** Clones share their template's unmodified pages (copy-on-write); without it every clone costs its full memory. */
  sharedMemory: boolean;
  /** Why the backend lacks a capability, for hints. */
  notes: Partial<Record<'perSession' | 'replicas' | 'factories' | 'exposures' | 'customKernel' | 'sharedMemory', string>>;
}

export const CAPABILITIES: Record<BackendName, BackendCapabilities> = {
  kvm: {
    perSession: true,
    replicas: true,
    factories: true,
    exposures: true,
    maxPortSlots: 119,
    maxVcpus: 64,
    minMemoryBytes: MIN_GUEST_MEMORY,
    portMemory: { perPortBytes: PORT_BUFFER_BYTES, besidesBytes: MEMORY_BESIDES_PORTS },
    customKernel: true,
    sharedMemory: true,
    notes: {},
  },
  xen: {
    perSession: true,
    replicas: true,
    // The supervisor's creation path is the KVM lifecycle's, over the Xen runtime: a created instance is one
    // more restore (or fork) of its template, with its parameters in its identity.
    factories: true,
    exposures: true,
    maxPortSlots: 31,
    maxVcpus: 64,
    // The same kernel and initramfs, plus two small modules and the vchan client.
    minMemoryBytes: MIN_GUEST_MEMORY,
    customKernel: true,
    sharedMemory: true,
    notes: {},
  },
  kubevirt: {
    perSession: false,
    replicas: true,
    factories: false,
    exposures: true,
    maxPortSlots: 31,
    maxVcpus: 64,
    // The same kernel and initramfs, booted by KubeVirt from a container image.
    minMemoryBytes: MIN_GUEST_MEMORY,
    customKernel: false,
    sharedMemory: false,
    notes: {
      perSession: 'KubeVirt cannot fork a running guest, so there is no fresh copy-on-write clone per session',
      factories: 'KubeVirt cannot fork a running guest, so a factory cannot create instances from a template',
      customKernel: "a kernel at a path of this machine is not on the cluster's nodes; the guest image carries the distribution's cloud kernel",
      sharedMemory: 'KubeVirt guests share no pages, so every clone costs its full memory',
    },
  },
};

/** The least memory a guest of backend `caps` with `portSlots` ports (the control port included) boots in, in bytes, rounded up to whole MiB. */
export function minGuestMemory(caps: BackendCapabilities, portSlots: number): number {
  const MiB = 1024 * 1024;
  const ports = caps.portMemory ? caps.portMemory.besidesBytes + portSlots * caps.portMemory.perPortBytes : 0;
  return Math.max(caps.minMemoryBytes, Math.ceil(ports / MiB) * MiB);
}
