// The reseed helper: /bin/mcl-reseed, a tiny static Linux executable that
// forces the guest kernel to reseed its CRNG.
//
// Every clone is a copy-on-write fork of one template guest, so every clone
// wakes up with the template's CRNG state. The agent writes the clone's seed
// into /dev/urandom, but a write only mixes into the input pool; Linux 6.1
// moves the pool into the CRNG on its own schedule (seconds later). The
// RNDRESEEDCRNG ioctl reseeds at once: crng_reseed() extracts the pool (which
// now holds the seed) into a new base key and bumps the generation, so every
// per-CPU CRNG refreshes before its next output. Busybox has no applet that
// issues an arbitrary ioctl, and the image must build without a C compiler and
// without committed binaries, so the executable is written here byte by byte
// from the instruction table below (about 240 bytes).
//
// What it does: fd = open(device, O_RDONLY); ioctl(fd, RNDRESEEDCRNG, 0);
// exit with 0 on success or with the errno of the failing call (open or
// ioctl). The ioctl needs CAP_SYS_ADMIN (the agent runs as root), not write
// access to the device. The process exits without closing fd: the kernel
// closes it.
//
// Only x86-64 is generated; `reseedProgram` reports any other architecture as
// unsupported, and the image then has no helper (the agent falls back to
// mixing the seed in, see spec/guest.md "Randomness").

import { le32, staticExecutable, SYS, unsupportedArch, type HelperProgram, type Instruction } from './elf';

export { LOAD_ADDRESS } from './elf';

/** RNDRESEEDCRNG = _IO('R', 0x07): no direction and no size bits, type 'R' (0x52) in bits 8-15, number 7. */
export const RNDRESEEDCRNG = (0x52 << 8) | 0x07;

const { open: SYS_OPEN, ioctl: SYS_IOCTL, exit_group: SYS_EXIT_GROUP } = SYS;

/** The program, in order. Registers follow the syscall ABI: rax number, rdi/rsi/rdx arguments, rax result (-errno on failure). */
const X86_64_CODE: readonly Instruction[] = [
  { asm: `mov eax, ${SYS_OPEN}`, bytes: [0xb8, ...le32(SYS_OPEN)], why: 'system call open' },
  { asm: 'lea rdi, [rip + path]', bytes: [0x48, 0x8d, 0x3d, 0, 0, 0, 0], rel: { target: 'data', size: 4 }, why: 'argument 1: the device path (position independent)' },
  { asm: 'xor esi, esi', bytes: [0x31, 0xf6], why: 'argument 2: flags O_RDONLY (0); no mode is needed without O_CREAT' },
  { asm: 'syscall', bytes: [0x0f, 0x05], why: 'rax = the file descriptor, or -errno' },
  { asm: 'test rax, rax', bytes: [0x48, 0x85, 0xc0], why: 'negative means open failed' },
  { asm: 'js exit', bytes: [0x78, 0], rel: { target: 'exit', size: 1 }, why: 'on failure exit with its errno' },
  { asm: 'mov edi, eax', bytes: [0x89, 0xc7], why: 'argument 1: the file descriptor' },
  { asm: `mov eax, ${SYS_IOCTL}`, bytes: [0xb8, ...le32(SYS_IOCTL)], why: 'system call ioctl' },
  { asm: `mov esi, 0x${RNDRESEEDCRNG.toString(16)}`, bytes: [0xbe, ...le32(RNDRESEEDCRNG)], why: 'argument 2: the request RNDRESEEDCRNG' },
  { asm: 'xor edx, edx', bytes: [0x31, 0xd2], why: 'argument 3: 0 (the request takes no argument)' },
  { asm: 'syscall', bytes: [0x0f, 0x05], why: 'rax = 0, or -errno (EPERM without CAP_SYS_ADMIN, ENODATA before the CRNG is initialised)' },
  { label: 'exit', asm: 'mov edi, eax', bytes: [0x89, 0xc7], why: 'the result of the last call: 0 or -errno' },
  { asm: 'neg edi', bytes: [0xf7, 0xdf], why: 'argument 1: exit status 0 or errno' },
  { asm: `mov eax, ${SYS_EXIT_GROUP}`, bytes: [0xb8, ...le32(SYS_EXIT_GROUP)], why: 'system call exit_group' },
  { asm: 'syscall', bytes: [0x0f, 0x05], why: 'does not return' },
];

/**
 * The reseed helper for a guest architecture (`x86_64`; anything else is
 * reported as unsupported, never thrown). `device` is the character device
 * to open, /dev/urandom in images; tests point it elsewhere to exercise the
 * failure paths. The output depends on the arguments only.
 */
export function reseedProgram(arch: string, device = '/dev/urandom'): HelperProgram {
  const unsupported = unsupportedArch(arch, 'reseed helper');
  if (unsupported) return unsupported;
  if (!device.startsWith('/') || device.includes('\0') || device.length > 255 || /[^\x20-\x7e]/.test(device)) {
    return { ok: false, reason: `device ${JSON.stringify(device)} is not an absolute printable ASCII path` };
  }
  const p = staticExecutable(X86_64_CODE, { bytes: Buffer.from(`${device}\0`, 'latin1'), listing: `path: ${JSON.stringify(device)}, NUL-terminated` });
  return { ok: true, ...p };
}
