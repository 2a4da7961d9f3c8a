// NodeHost reads the workspace and the standard library from disk and refuses
// anything outside them, including through symbolic links.

import { afterAll, describe, expect, test } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createHash } from 'node:crypto';
import { MAX_FILE_BYTES, NodeHost, readBoundedFile, walkSourceFiles } from '../src/node-host';
import { compile } from '../src/index';
import { REPO } from './helpers';

const dir = mkdtempSync(join(tmpdir(), 'mcl-nodehost-'));
const root = join(dir, 'ws');
mkdirSync(join(root, 'shop'), { recursive: true });
writeFileSync(join(dir, 'secret.txt'), 'top secret');
writeFileSync(join(root, 'main.mcl'), 'import shop.parts.{Db}\nsystem S { db = Db }\n');
writeFileSync(join(root, 'shop', 'parts.mcl'), 'component Db { program { script "db.sh" } }\n');
writeFileSync(join(root, 'shop', 'db.sh'), 'echo db\n');
symlinkSync(join(dir, 'secret.txt'), join(root, 'link.txt'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('NodeHost', () => {
  const host = new NodeHost({ root, stdlib: join(REPO, 'stdlib') });

  test('reads workspace files and stdlib modules', () => {
    expect(host.readFile('shop/db.sh')).toBe('echo db\n');
    expect(host.readStdlib('http')).toContain('protocol Http');
    expect(host.readFile('missing.mcl')).toBeUndefined();
    expect(host.readStdlib('nope')).toBeUndefined();
  });

  test('refuses paths that leave the workspace', () => {
    for (const p of ['../secret.txt', '/etc/passwd', 'shop/../../secret.txt', 'link.txt', 'a\0b', '', 'shop']) {
      expect(host.readFile(p), p).toBeUndefined();
    }
    expect(host.readStdlib('../compiler/package')).toBeUndefined();
  });

  test('the positional constructor and the overlay work', () => {
    const h = new NodeHost(root, join(REPO, 'stdlib'));
    h.overlay.set('main.mcl', 'type T = int\n');
    expect(h.readFile('main.mcl')).toBe('type T = int\n');
    expect(h.toWorkspacePath(join(root, 'shop', 'db.sh'))).toBe('shop/db.sh');
    expect(h.toWorkspacePath(join(dir, 'secret.txt'))).toBeUndefined();
  });

  test('native sha256 and a full compile from disk', () => {
    expect(host.sha256('abc')).toBe(createHash('sha256').update('abc').digest('hex'));
    const r = compile(host, { entries: ['main.mcl'], mclcVersion: 't' });
    expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    expect(r.plan?.instances[0].program.argv).toEqual(['/bin/sh', '/mcl/program/db.sh']);
    expect(r.plan?.sources.map((s) => s.path)).toEqual(['main.mcl', 'shop/db.sh', 'shop/parts.mcl', 'std:prelude']);
  });
});

describe('walkSourceFiles', () => {
  // A link loop hung `mclc validate`, `d/loop -> ..` listed one file 41 times, and `d/root -> /` walked the machine.
  const w = join(dir, 'walk');
  mkdirSync(join(w, 'd', 'node_modules'), { recursive: true });
  writeFileSync(join(w, 'a.mcl'), 'type A = int\n');
  writeFileSync(join(w, 'd', 'b.mcl'), 'type B = int\n');
  writeFileSync(join(w, 'd', 'node_modules', 'c.mcl'), 'type C = int\n');
  writeFileSync(join(w, 'd', 'notes.txt'), '');
  symlinkSync('..', join(w, 'd', 'loop'));
  symlinkSync('/', join(w, 'd', 'root'));
  symlinkSync('b.mcl', join(w, 'd', 'link.mcl'));
  symlinkSync('gone.mcl', join(w, 'd', 'dangling.mcl'));
  execFileSync('mkfifo', [join(w, 'd', 'pipe.mcl')]);

  test('does not follow directory links, lists file links, leaves out special files and skipped folders', () => {
    const r = walkSourceFiles(w);
    expect(r.files.map((f) => relative(w, f))).toEqual(['a.mcl', 'd/b.mcl', 'd/link.mcl']);
    expect(r.skippedLinks.map((f) => relative(w, f)).sort()).toEqual(['d/loop', 'd/root']);
    expect(r.truncated).toBe(false);
  });

  test('stops at maxFiles and maxDepth', () => {
    expect(walkSourceFiles(w, { maxFiles: 1 })).toMatchObject({ files: [join(w, 'a.mcl')], truncated: true });
    expect(walkSourceFiles(w, { maxDepth: 0 })).toMatchObject({ files: [join(w, 'a.mcl')], truncated: true });
  });
});

describe('readBoundedFile and the reasons a file is not read', () => {
  const b = join(dir, 'bounded');
  mkdirSync(b, { recursive: true });
  writeFileSync(join(b, 'small.mcl'), 'type T = int\n');
  execFileSync('mkfifo', [join(b, 'pipe.mcl')]);

  test('reads a regular file, and refuses FIFOs, devices, directories and files over the limit', () => {
    expect(readBoundedFile(join(b, 'small.mcl'), 100)).toEqual({ ok: true, text: 'type T = int\n' });
    // A FIFO with no writer blocked open() forever; /dev/zero never ends.
    expect(readBoundedFile(join(b, 'pipe.mcl'), 100)).toMatchObject({ ok: false, kind: 'special', type: 'a FIFO' });
    expect(readBoundedFile('/dev/zero', 100)).toMatchObject({ ok: false, kind: 'special', type: 'a character device' });
    expect(readBoundedFile(b, 100)).toMatchObject({ ok: false, kind: 'directory' });
    expect(readBoundedFile(join(b, 'small.mcl'), 5)).toMatchObject({ ok: false, kind: 'too-large', size: 13 });
    expect(readBoundedFile(join(b, 'none.mcl'), 5)).toMatchObject({ ok: false, kind: 'missing' });
  });

  test('files of every size read one after another give their own bytes, whole, also past the reused buffer', () => {
    // Files up to a megabyte are read into one buffer that every read reuses: a short file read after a
    // long one must not show the long one's tail, and a character cut by a read's end must decode whole.
    const sizes = [0, 1, 1023, 1024, 1025, (1 << 20) - 1026, (1 << 20) - 1025, (1 << 20) - 1024, 1 << 20, (1 << 20) + 1, 3 << 20, 7];
    const texts = sizes.map((n, i) => (`${i}é€😀` + 'x'.repeat(n)).slice(0, Math.max(n, 1)));
    texts.forEach((t, i) => writeFileSync(join(b, `s${i}.txt`), t));
    for (let round = 0; round < 2; round++) {
      texts.forEach((t, i) => expect(readBoundedFile(join(b, `s${i}.txt`), 8 << 20)).toEqual({ ok: true, text: readFileSync(join(b, `s${i}.txt`), 'utf8') }));
    }
    const big = join(b, `s${sizes.indexOf(3 << 20)}.txt`);
    const bytes = readFileSync(big).length;
    expect(readBoundedFile(big, bytes)).toMatchObject({ ok: true });
    expect(readBoundedFile(big, bytes - 1)).toMatchObject({ ok: false, kind: 'too-large', size: bytes });
  });

  test('a file whose size says nothing of its length (procfs) is read on to its end, and no further than the limit', () => {
    // /proc files are regular files of size 0: what a file growing while it is read looks like.
    const whole = readFileSync('/proc/self/mountinfo', 'utf8');
    expect(whole.length).toBeGreaterThan(10);
    expect(readBoundedFile('/proc/self/mountinfo', 1 << 20)).toEqual({ ok: true, text: whole });
    expect(readBoundedFile('/proc/self/mountinfo', 5)).toEqual({ ok: false, kind: 'too-large', size: 6 });
  });

  test('an over-size entry, a FIFO and a link out of the workspace are not reported as missing', () => {
    const ws = join(dir, 'reasons');
    mkdirSync(ws, { recursive: true });
    writeFileSync(join(ws, 'big.mcl'), Buffer.alloc(MAX_FILE_BYTES + 1, 0x20));
    execFileSync('mkfifo', [join(ws, 'pipe.mcl')]);
    symlinkSync(join(dir, 'secret.txt'), join(ws, 'out.mcl'));
    writeFileSync(join(ws, 'main.mcl'), 'import big.{T}\n');
    writeFileSync(join(ws, 'prog.mcl'), 'component C { program { script "run.sh" } }\nsystem S { c = C }\n');
    symlinkSync('/dev/zero', join(ws, 'run.sh'));
    const h = new NodeHost({ root: ws, stdlib: join(REPO, 'stdlib') });
    const messages = (entries: string[]) => compile(h, { entries, mclcVersion: 't' }).diagnostics.map((d) => `${d.code} ${d.message}`);
    expect(messages(['big.mcl'])).toContain('MCL0211 entry file `big.mcl` cannot be read: it is 64 MiB (67108865 bytes), more than the 64 MiB a source or program file may have');
    expect(messages(['pipe.mcl'])).toContain('MCL0211 entry file `pipe.mcl` cannot be read: it is a FIFO, not a regular file');
    expect(messages(['out.mcl'])).toContain(`MCL0211 entry file \`out.mcl\` cannot be read: it is a symbolic link to ${join(dir, 'secret.txt')}, outside the workspace`);
    const main = messages(['main.mcl']);
    expect(main).toContain('MCL0201 module `big` cannot be read: it is 64 MiB (67108865 bytes), more than the 64 MiB a source or program file may have');
    expect(messages(['prog.mcl'])).toContain('MCL0702 program file `run.sh` cannot be read (`run.sh`): it is a symbolic link to /dev/zero, outside the workspace');
  });
});
