// Tiny static x86-64 Linux executables written byte by byte: the guest
// helpers that busybox has no applet for (reseed.ts, hello.ts). The image must
// build without a C compiler and without committed binaries, so each helper is
// an instruction table (encoding, assembly text and why), assembled here into
// one read-only, executable PT_LOAD segment, followed by the helper's constant
// data. Nothing is ever written to the segment: a helper keeps what it writes
// on its stack, which PT_GNU_STACK declares not executable.

/** Where a helper is loaded: the conventional base of a non-PIE x86-64 executable, far above mmap_min_addr. */
export const LOAD_ADDRESS = 0x400000;

const ELF_HEADER_SIZE = 64;
const PROGRAM_HEADER_SIZE = 56;
const PROGRAM_HEADER_COUNT = 2;
/** The code follows the ELF header and the program headers in the one loaded segment. */
const CODE_OFFSET = ELF_HEADER_SIZE + PROGRAM_HEADER_SIZE * PROGRAM_HEADER_COUNT;

/** The x86-64 Linux system call numbers the helpers use (arch/x86/entry/syscalls/syscall_64.tbl). */
export const SYS = { read: 0, write: 1, open: 2, ioctl: 16, exit_group: 231 } as const;

export const le32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];

/**
 * One instruction: its encoding, its assembly text and why it is there. A
 * `rel` operand is a displacement to a label, relative to the end of the
 * instruction, held in the instruction's last `size` bytes (zeros in `bytes`).
 * The label `data` is the helper's constant data, after the last instruction.
 */
export interface Instruction {
  label?: string;
  asm: string;
  bytes: number[];
  rel?: { target: string; size: 1 | 4 };
  why: string;
}

/** A helper's constant data, placed after its code (label `data`), and how the listing shows it. */
export interface HelperData {
  bytes: Buffer;
  listing: string;
}

export interface Executable {
  /** The executable's bytes. */
  elf: Buffer;
  /** The virtual address of the first instruction (the ELF entry point). */
  entry: number;
  /** The assembly listing, one line per instruction (address, bytes, instruction, why), then the data. */
  listing: string[];
}

/** A helper for a guest architecture, or why there is none. */
export type HelperProgram = ({ ok: true } & Executable) | { ok: false; reason: string };

/**
 * Why a helper (`what`, e.g. "reseed helper") cannot be had for a guest architecture, or null when it can: the
 * instruction tables are written for x86-64 only.
 */
export function unsupportedArch(arch: string, what: string): { ok: false; reason: string } | null {
  return arch === 'x86_64' ? null : { ok: false, reason: `no ${what} for ${arch || 'an unknown'} guests (only x86_64)` };
}

/**
 * Assembles the instruction table at `base`, followed by the data; resolves the label displacements. A label that
 * does not exist, or a displacement that does not fit its operand, is a mistake in the table and throws (the tables
 * are constants of this installation, checked by the tests).
 */
function assemble(code: readonly Instruction[], base: number, data: HelperData): { bytes: Buffer; listing: string[] } {
  const labels = new Map<string, number>();
  let at = 0;
  for (const ins of code) {
    if (ins.label) labels.set(ins.label, at);
    at += ins.bytes.length;
  }
  labels.set('data', at);
  const out: number[] = [];
  const listing: string[] = [];
  for (const ins of code) {
    const start = out.length;
    const bytes = [...ins.bytes];
    if (ins.rel) {
      const target = labels.get(ins.rel.target);
      if (target === undefined) throw new Error(`helper code: no label ${ins.rel.target}`);
      const end = start + bytes.length;
      const disp = target - end;
      if (ins.rel.size === 1 && (disp < -128 || disp > 127)) throw new Error(`helper code: ${ins.asm} is ${disp} bytes from its label`);
      const enc = ins.rel.size === 1 ? [disp & 0xff] : le32(disp);
      bytes.splice(bytes.length - ins.rel.size, ins.rel.size, ...enc);
    }
    out.push(...bytes);
    const hex = bytes.map((b) => b.toString(16).padStart(2, '0')).join(' ');
    listing.push(`${(base + start).toString(16)}  ${hex.padEnd(21)} ${ins.asm.padEnd(24)} ; ${ins.why}`);
  }
  listing.push(`${(base + out.length).toString(16)}  ${data.listing}`);
  out.push(...data.bytes);
  return { bytes: Buffer.from(out), listing };
}

/** A static x86-64 executable of the code and data: the ELF header, PT_LOAD of the whole file (read, execute), PT_GNU_STACK. */
export function staticExecutable(code: readonly Instruction[], data: HelperData): Executable {
  const entry = LOAD_ADDRESS + CODE_OFFSET;
  const { bytes, listing } = assemble(code, entry, data);
  const size = CODE_OFFSET + bytes.length;
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
  elf.writeUInt32LE(0x4 | 0x1, ph + 4); // p_flags: PF_R | PF_X (the data is read from this segment too; nothing is written)
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

  bytes.copy(elf, CODE_OFFSET);
  return { elf, entry, listing };
}
