// The hello responder: /bin/mcl-hello, a tiny static Linux executable that
// answers the control port's `hello NONCE` with `ready NONCE` until the first
// other line, which it hands to the agent.
//
// Why it exists: a clone is ready when its agent answers the host's hello
// (spec/guest.md, "Control protocol"). Under TCG every clone's QEMU translates
// the guest code of that answer anew, and the agent's shell is about a third
// of it: its own code (about 780 blocks) and the kernel paths of its system
// calls (a read per byte, the redirection of `say`). This responder reads a
// line with the same read per byte and answers with one write, so a pooled
// fork is ready after the kernel's wake-up and two system calls. The agent
// starts it once, when it begins serving (the template is saved while it waits
// in its read), and serves every line after the first that is not a hello
// itself; the shell's own wake-up then falls into the first command, an
// identity's, which takes hundreds of milliseconds anyway.
//
// What it does, on descriptors it is given: it reads fd 0 a byte at a time.
// A line `hello NONCE` (NONCE 1 to 64 of [0-9A-Za-z_-]) is answered on fd 1
// with `ready NONCE` and a newline, and the next line is read. At the first
// byte that does not fit that shape it writes the bytes of the line read so
// far to fd 5 and exits: with HELLO_EXIT.line when they end with the line's
// newline (a whole line), HELLO_EXIT.partial when the agent must read the
// rest of the line itself. So no byte is lost or read twice, and every other
// line, a hello of another shape included, is the agent's to answer as
// before. End of input before a line's first byte is HELLO_EXIT.eof (no host
// is connected to the port; the agent polls as it does itself); a failed read
// or write HELLO_EXIT.failed (the agent then serves the port itself). The line
// is kept on the stack (at most 71 bytes are read of it); nothing else is
// read or written.
//
// Only x86-64 is generated, as for the reseed helper; without it (another
// architecture) the agent serves hellos itself.

import { le32, staticExecutable, SYS, unsupportedArch, type HelperProgram, type Instruction } from './elf';

/** The responder's exit statuses; agent.sh's serve_loop names the same numbers. */
export const HELLO_EXIT = { partial: 1, eof: 2, line: 3, failed: 4 } as const;

/** Longest nonce answered; a longer one is handed to the agent. */
export const HELLO_MAX_NONCE = 64;
const PREFIX = 'hello ';

const { read: SYS_READ, write: SYS_WRITE, exit_group: SYS_EXIT_GROUP } = SYS;
/** -EINTR as the kernel returns it in rax: a read or write interrupted by a signal is repeated. */
const EINTR = 4;
/** The descriptor the bytes of a line that is not a hello are handed over on. */
const HAND_OVER_FD = 5;

// Registers: r12 = bytes of the current line read (k), kept on the stack at [rsp]; r13 = bytes written so far of what
// write_all writes; ebx = the descriptor write_all writes to. The system call ABI: rax number, rdi/rsi/rdx arguments,
// rax result (-errno on failure); syscall clobbers rcx and r11 only.
const X86_64_CODE: readonly Instruction[] = [
  { asm: 'sub rsp, 136', bytes: [0x48, 0x81, 0xec, ...le32(136)], why: 'the line buffer on the stack (71 bytes used)' },
  { label: 'next_line', asm: 'xor r12d, r12d', bytes: [0x45, 0x31, 0xe4], why: 'k = 0: nothing of the line read yet' },
  { label: 'read_byte', asm: `xor eax, eax`, bytes: [0x31, 0xc0], why: `system call read (${SYS_READ})` },
  { asm: 'xor edi, edi', bytes: [0x31, 0xff], why: 'argument 1: fd 0, the control port' },
  { asm: 'lea rsi, [rsp + r12]', bytes: [0x4a, 0x8d, 0x34, 0x24], why: 'argument 2: &line[k]' },
  { asm: 'mov edx, 1', bytes: [0xba, ...le32(1)], why: 'argument 3: one byte, so that nothing past the line is taken from the agent' },
  { asm: 'syscall', bytes: [0x0f, 0x05], why: 'rax = 1, 0 at end of input, or -errno' },
  { asm: `cmp rax, -${EINTR}`, bytes: [0x48, 0x83, 0xf8, 0x100 - EINTR], why: 'interrupted by a signal' },
  { asm: 'je read_byte', bytes: [0x74, 0], rel: { target: 'read_byte', size: 1 }, why: 'then read again' },
  { asm: 'test rax, rax', bytes: [0x48, 0x85, 0xc0], why: '0 or negative' },
  { asm: 'jle end_of_input', bytes: [0x0f, 0x8e, 0, 0, 0, 0], rel: { target: 'end_of_input', size: 4 }, why: 'is the end of input or a failure' },
  { asm: 'movzx eax, byte [rsp + r12]', bytes: [0x42, 0x0f, 0xb6, 0x04, 0x24], why: 'eax = the byte read' },
  { asm: 'inc r12', bytes: [0x49, 0xff, 0xc4], why: 'k counts it' },
  { asm: `cmp r12, ${PREFIX.length}`, bytes: [0x49, 0x83, 0xfc, PREFIX.length], why: `past the ${PREFIX.length} bytes of "${PREFIX}"` },
  { asm: 'ja nonce_byte', bytes: [0x77, 0], rel: { target: 'nonce_byte', size: 1 }, why: 'it is a byte of the nonce or its newline' },
  { asm: 'lea rcx, [rip + data]', bytes: [0x48, 0x8d, 0x0d, 0, 0, 0, 0], rel: { target: 'data', size: 4 }, why: `rcx = "${PREFIX}" (position independent)` },
  { asm: 'cmp al, [rcx + r12 - 1]', bytes: [0x42, 0x3a, 0x44, 0x21, 0xff], why: `the byte of "${PREFIX}" at the same place` },
  { asm: 'jne hand_over', bytes: [0x75, 0], rel: { target: 'hand_over', size: 1 }, why: 'a different byte: not a hello' },
  { asm: 'jmp read_byte', bytes: [0xeb, 0], rel: { target: 'read_byte', size: 1 }, why: 'the prefix so far' },
  { label: 'nonce_byte', asm: 'cmp eax, 10', bytes: [0x83, 0xf8, 0x0a], why: 'a newline' },
  { asm: 'je hello_line', bytes: [0x74, 0], rel: { target: 'hello_line', size: 1 }, why: 'ends the line' },
  { asm: `cmp r12, ${PREFIX.length + HELLO_MAX_NONCE}`, bytes: [0x49, 0x83, 0xfc, PREFIX.length + HELLO_MAX_NONCE], why: `past ${HELLO_MAX_NONCE} bytes of nonce` },
  { asm: 'ja hand_over', bytes: [0x77, 0], rel: { target: 'hand_over', size: 1 }, why: 'the nonce is too long to answer here' },
  { asm: 'lea ecx, [rax - 48]', bytes: [0x8d, 0x48, 0xd0], why: "ecx = byte - '0'" },
  { asm: 'cmp ecx, 9', bytes: [0x83, 0xf9, 0x09], why: 'unsigned: 0 to 9 is a digit' },
  { asm: 'jbe read_byte', bytes: [0x76, 0], rel: { target: 'read_byte', size: 1 }, why: 'a digit of the nonce' },
  { asm: 'mov ecx, eax', bytes: [0x89, 0xc1], why: 'ecx = the byte' },
  { asm: 'or ecx, 32', bytes: [0x83, 0xc9, 0x20], why: "a capital letter as a small one (and no other byte into 'a' to 'z')" },
  { asm: 'sub ecx, 97', bytes: [0x83, 0xe9, 0x61], why: "ecx = that - 'a'" },
  { asm: 'cmp ecx, 25', bytes: [0x83, 0xf9, 0x19], why: 'unsigned: 0 to 25 is a letter' },
  { asm: 'jbe read_byte', bytes: [0x76, 0], rel: { target: 'read_byte', size: 1 }, why: 'a letter of the nonce' },
  { asm: "cmp eax, '-'", bytes: [0x83, 0xf8, 0x2d], why: 'a hyphen' },
  { asm: 'je read_byte', bytes: [0x74, 0], rel: { target: 'read_byte', size: 1 }, why: 'is of the nonce' },
  { asm: "cmp eax, '_'", bytes: [0x83, 0xf8, 0x5f], why: 'an underscore' },
  { asm: 'je read_byte', bytes: [0x74, 0], rel: { target: 'read_byte', size: 1 }, why: 'is of the nonce' },
  { asm: 'jmp hand_over', bytes: [0xeb, 0], rel: { target: 'hand_over', size: 1 }, why: 'any other byte: not a hello this answers' },
  { label: 'hello_line', asm: `cmp r12, ${PREFIX.length + 2}`, bytes: [0x49, 0x83, 0xfc, PREFIX.length + 2], why: 'the prefix, a nonce byte at least and the newline' },
  { asm: 'jb hand_over', bytes: [0x72, 0], rel: { target: 'hand_over', size: 1 }, why: 'else "hello " and a newline: the agent answers that' },
  { asm: "mov dword [rsp], 'read'", bytes: [0xc7, 0x04, 0x24, ...Buffer.from('read', 'latin1')], why: 'the line becomes the answer: "read"' },
  { asm: "mov word [rsp + 4], 'y '", bytes: [0x66, 0xc7, 0x44, 0x24, 0x04, ...Buffer.from('y ', 'latin1')], why: '"y " over "o ": "ready NONCE" and the newline' },
  { asm: 'mov ebx, 1', bytes: [0xbb, ...le32(1)], why: 'to fd 1, the control port' },
  { asm: 'call write_all', bytes: [0xe8, 0, 0, 0, 0], rel: { target: 'write_all', size: 4 }, why: 'writes line[0, k)' },
  { asm: 'test eax, eax', bytes: [0x85, 0xc0], why: 'not 0' },
  { asm: 'jnz fail', bytes: [0x75, 0], rel: { target: 'fail', size: 1 }, why: 'when the write failed' },
  { asm: 'jmp next_line', bytes: [0xe9, 0, 0, 0, 0], rel: { target: 'next_line', size: 4 }, why: 'answered: read the next line' },
  { label: 'hand_over', asm: `mov ebx, ${HAND_OVER_FD}`, bytes: [0xbb, ...le32(HAND_OVER_FD)], why: `to fd ${HAND_OVER_FD}, the agent's` },
  { asm: 'call write_all', bytes: [0xe8, 0, 0, 0, 0], rel: { target: 'write_all', size: 4 }, why: 'writes the line read so far, line[0, k) (k >= 1)' },
  { asm: 'test eax, eax', bytes: [0x85, 0xc0], why: 'not 0' },
  { asm: 'jnz fail', bytes: [0x75, 0], rel: { target: 'fail', size: 1 }, why: 'when the write failed' },
  { asm: `mov edi, ${HELLO_EXIT.partial}`, bytes: [0xbf, ...le32(HELLO_EXIT.partial)], why: 'exit status: a part of the line' },
  { asm: `mov ecx, ${HELLO_EXIT.line}`, bytes: [0xb9, ...le32(HELLO_EXIT.line)], why: 'or: the whole line' },
  { asm: 'cmp byte [rsp + r12 - 1], 10', bytes: [0x42, 0x80, 0x7c, 0x24, 0xff, 0x0a], why: 'whether the last byte handed over is the newline' },
  { asm: 'cmove edi, ecx', bytes: [0x0f, 0x44, 0xf9], why: 'then the whole line' },
  { asm: 'jmp exit', bytes: [0xeb, 0], rel: { target: 'exit', size: 1 }, why: 'done' },
  { label: 'end_of_input', asm: 'test r12, r12', bytes: [0x4d, 0x85, 0xe4], why: 'part of a line read' },
  { asm: 'jnz hand_over', bytes: [0x75, 0], rel: { target: 'hand_over', size: 1 }, why: 'is handed over (the agent meets the end or the failure itself)' },
  { asm: `mov edi, ${HELLO_EXIT.eof}`, bytes: [0xbf, ...le32(HELLO_EXIT.eof)], why: 'exit status: end of input' },
  { asm: 'test rax, rax', bytes: [0x48, 0x85, 0xc0], why: 'rax = 0' },
  { asm: 'jz exit', bytes: [0x74, 0], rel: { target: 'exit', size: 1 }, why: 'is the end of input, else the read failed' },
  { label: 'fail', asm: `mov edi, ${HELLO_EXIT.failed}`, bytes: [0xbf, ...le32(HELLO_EXIT.failed)], why: 'exit status: a read or write failed' },
  { label: 'exit', asm: `mov eax, ${SYS_EXIT_GROUP}`, bytes: [0xb8, ...le32(SYS_EXIT_GROUP)], why: 'system call exit_group' },
  { asm: 'syscall', bytes: [0x0f, 0x05], why: 'does not return' },
  { label: 'write_all', asm: 'xor r13d, r13d', bytes: [0x45, 0x31, 0xed], why: 'write_all(ebx): nothing written yet' },
  { label: 'write_more', asm: `mov eax, ${SYS_WRITE}`, bytes: [0xb8, ...le32(SYS_WRITE)], why: 'system call write' },
  { asm: 'mov edi, ebx', bytes: [0x89, 0xdf], why: 'argument 1: the descriptor' },
  { asm: 'lea rsi, [rsp + 8 + r13]', bytes: [0x4a, 0x8d, 0x74, 0x2c, 0x08], why: 'argument 2: what is left (the call pushed 8 bytes)' },
  { asm: 'mov rdx, r12', bytes: [0x4c, 0x89, 0xe2], why: 'argument 3: k' },
  { asm: 'sub rdx, r13', bytes: [0x4c, 0x29, 0xea], why: 'less what was written' },
  { asm: 'syscall', bytes: [0x0f, 0x05], why: 'rax = bytes written, or -errno' },
  { asm: `cmp rax, -${EINTR}`, bytes: [0x48, 0x83, 0xf8, 0x100 - EINTR], why: 'interrupted by a signal' },
  { asm: 'je write_more', bytes: [0x74, 0], rel: { target: 'write_more', size: 1 }, why: 'then write again' },
  { asm: 'test rax, rax', bytes: [0x48, 0x85, 0xc0], why: 'nothing written, or a failure' },
  { asm: 'jle write_failed', bytes: [0x7e, 0], rel: { target: 'write_failed', size: 1 }, why: 'fails' },
  { asm: 'add r13, rax', bytes: [0x49, 0x01, 0xc5], why: 'counts what was written' },
  { asm: 'cmp r13, r12', bytes: [0x4d, 0x39, 0xe5], why: 'all of it' },
  { asm: 'jb write_more', bytes: [0x72, 0], rel: { target: 'write_more', size: 1 }, why: 'not yet: write the rest' },
  { asm: 'xor eax, eax', bytes: [0x31, 0xc0], why: 'returns 0: written' },
  { asm: 'ret', bytes: [0xc3], why: '' },
  { label: 'write_failed', asm: 'mov eax, 1', bytes: [0xb8, ...le32(1)], why: 'returns 1: failed' },
  { asm: 'ret', bytes: [0xc3], why: '' },
];

/** The hello responder for a guest architecture (`x86_64`; anything else is reported as unsupported, never thrown). */
export function helloProgram(arch: string): HelperProgram {
  const unsupported = unsupportedArch(arch, 'hello responder');
  if (unsupported) return unsupported;
  const p = staticExecutable(X86_64_CODE, { bytes: Buffer.from(PREFIX, 'latin1'), listing: `data: ${JSON.stringify(PREFIX)}` });
  return { ok: true, ...p };
}
