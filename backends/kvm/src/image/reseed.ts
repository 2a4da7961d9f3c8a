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

/** RNDRESEEDCRNG = _IO('R', 0x07): no direction and no size bits, type 'R' (0x52) in bits 8-15, number 7. */
export const RNDRESEEDCRNG = (0x52 << 8) | 0x07;

/** Where the program is loaded: the conventional base of a non-PIE x86-64 executable, far above mmap_min_addr. */
export const LOAD_ADDRESS = 0x400000;

// x86-64 Linux system call numbers (arch/x86/entry/syscalls/syscall_64.tbl).
const SYS_OPEN = 2;
const SYS_IOCTL = 16;
const SYS_EXIT_GROUP = 231;

const ELF_HEADER_SIZE = 64;
const PROGRAM_HEADER_SIZE = 56;
const PROGRAM_HEADER_COUNT = 2;
/** The code follows the ELF header and the program headers in the one loaded segment. */
const CODE_OFFSET = ELF_HEADER_SIZE + PROGRAM_HEADER_SIZE * PROGRAM_HEADER_COUNT;

const le32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];

/**
 * One instruction: its encoding, its assembly text and why it is there. A
 * `rel` operand is a displacement to a label, relative to the end of the
 * instruction, held in the instruction's last `size` bytes (zeros in `bytes`).
 */
interface Instruction {
  label?: string;
  asm: string;
  bytes: number[];
  rel?: { target: string; size: 1 | 4 };
  why: string;
}

/** The program, in order. Registers follow the syscall ABI: rax number, rdi/rsi/rdx arguments, rax result (-errno on failure). */
const X86_64_CODE: Instruction[] = [
  { asm: `mov eax, ${SYS_OPEN}`, bytes: [0xb8, ...le32(SYS_OPEN)], why: 'system call open' },
  { asm: 'lea rdi, [rip + path]', bytes: [0x48, 0x8d, 0x3d, 0, 0, 0, 0], rel: { target: 'path', size: 4 }, why: 'argument 1: the device path (position independent)' },
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

export type ReseedProgram =
  | {
      ok: true;
      /** The executable's bytes. */
      elf: Buffer;
      /** The virtual address of the first instruction (the ELF entry point). */
      entry: number;
      /** The assembly listing, one line per instruction: address, bytes, instruction, why. */
      listing: string[];
    }
  | { ok: false; reason: string };

/** Assembles the instruction table at `base`, followed by the NUL-terminated path; resolves the label displacements. */
function assemble(code: Instruction[], base: number, path: string): { bytes: Buffer; listing: string[] } {
  const labels = new Map<string, number>();
  let at = 0;
  for (const ins of code) {
    if (ins.label) labels.set(ins.label, at);
    at += ins.bytes.length;
  }
  labels.set('path', at);
  const out: number[] = [];
  const listing: string[] = [];
  for (const ins of code) {
    const start = out.length;
    const bytes = [...ins.bytes];
    if (ins.rel) {
      const end = start + bytes.length;
      const disp = labels.get(ins.rel.target)! - end;
      const enc = ins.rel.size === 1 ? [disp & 0xff] : le32(disp);
      bytes.splice(bytes.length - ins.rel.size, ins.rel.size, ...enc);
    }
    out.push(...bytes);
    const hex = bytes.map((b) => b.toString(16).padStart(2, '0')).join(' ');
    listing.push(`${(base + start).toString(16)}  ${hex.padEnd(21)} ${ins.asm.padEnd(24)} ; ${ins.why}`);
  }
  listing.push(`${(base + out.length).toString(16)}  path: ${JSON.stringify(path)}, NUL-terminated`);
  out.push(...Buffer.from(path + '\0', 'latin1'));
  return { bytes: Buffer.from(out), listing };
}

/**
 * The reseed helper for a guest architecture (`x86_64`; anything else is
 * reported as unsupported, never thrown). `device` is the character device
 * to open, /dev/urandom in images; tests point it elsewhere to exercise the
 * failure paths. The output depends on the arguments only.
 */
export function reseedProgram(arch: string, device = '/dev/urandom'): ReseedProgram {
  if (arch !== 'x86_64') {
    return { ok: false, reason: `no reseed helper for ${arch || 'an unknown'} guests (only x86_64)` };
  }
  if (!device.startsWith('/') || device.includes('\0') || device.length > 255 || /[^\x20-\x7e]/.test(device)) {
    return { ok: false, reason: `device ${JSON.stringify(device)} is not an absolute printable ASCII path` };
  }
  const entry = LOAD_ADDRESS + CODE_OFFSET;
  const { bytes: code, listing } = assemble(X86_64_CODE, entry, device);
  const size = CODE_OFFSET + code.length;
  const elf = Buffer.alloc(size);

  // ELF header (Elf64_Ehdr).
  elf.set([0x7f, 0x45, 0x4c, 0x46], 0); // EI_MAG: "\x7fELF"
  elf[4] = 2; // EI_CLASS: ELFCLASS64
  elf[5] = 1; // EI_DATA: ELFDATA2LSB (little endian)
  elf[6] = 1; // EI_VERSION: EV_CURRENT
  elf[7] = 0; // EI_OSABI: ELFOSABI_SYSV; EI_ABIVERSION and the padding stay 0
  elf.writeUInt16LE(2, 16); // e_type: ET_EXEC (loaded at fixed addresses, no relocation)
  elf.writeUInt16LE(62, 18); // e_machine: EM_X86_64
  elf.writeUInt32LE(1, 20); // e_version: EV_CURRENT
  elf.writeBigUInt64LE(BigInt(entry), 24); // e_entry: the first instruction
  elf.writeBigUInt64LE(BigInt(ELF_HEADER_SIZE), 32); // e_phoff: program headers right after this header
  elf.writeBigUInt64LE(0n, 40); // e_shoff: no section headers (the loader does not need them)
  elf.writeUInt32LE(0, 48); // e_flags: none defined for x86-64
  elf.writeUInt16LE(ELF_HEADER_SIZE, 52); // e_ehsize
  elf.writeUInt16LE(PROGRAM_HEADER_SIZE, 54); // e_phentsize
  elf.writeUInt16LE(PROGRAM_HEADER_COUNT, 56); // e_phnum
  elf.writeUInt16LE(0, 58); // e_shentsize: no section headers
  elf.writeUInt16LE(0, 60); // e_shnum
  elf.writeUInt16LE(0, 62); // e_shstrndx: SHN_UNDEF

  // Program header 1 (Elf64_Phdr): PT_LOAD maps the whole file, headers included, read and execute.
  let ph = ELF_HEADER_SIZE;
  elf.writeUInt32LE(1, ph); // p_type: PT_LOAD
  elf.writeUInt32LE(0x4 | 0x1, ph + 4); // p_flags: PF_R | PF_X (the path is read from this segment too; nothing is written)
  elf.writeBigUInt64LE(0n, ph + 8); // p_offset: from the start of the file
  elf.writeBigUInt64LE(BigInt(LOAD_ADDRESS), ph + 16); // p_vaddr
  elf.writeBigUInt64LE(BigInt(LOAD_ADDRESS), ph + 24); // p_paddr: unused, conventionally p_vaddr
  elf.writeBigUInt64LE(BigInt(size), ph + 32); // p_filesz
  elf.writeBigUInt64LE(BigInt(size), ph + 40); // p_memsz: no bss
  elf.writeBigUInt64LE(0x1000n, ph + 48); // p_align: page size; p_offset and p_vaddr agree modulo it

  // Program header 2: PT_GNU_STACK with PF_R | PF_W states that the stack is not executable.
  ph += PROGRAM_HEADER_SIZE;
  elf.writeUInt32LE(0x6474e551, ph); // p_type: PT_GNU_STACK
  elf.writeUInt32LE(0x4 | 0x2, ph + 4); // p_flags: PF_R | PF_W
  elf.writeBigUInt64LE(16n, ph + 48); // p_align; every other field is 0

  code.copy(elf, CODE_OFFSET);
  return { ok: true, elf, entry, listing };
}
