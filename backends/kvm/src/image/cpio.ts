// A writer for the `newc` cpio format, the format the Linux kernel unpacks as
// an initramfs.
//
// Reproducibility is the point of writing it here instead of calling cpio(1):
// entries are sorted by path, every mtime is 0, owners are root, inode numbers
// are assigned in order, and parent directories are created implicitly, so the
// same entries always give the same bytes.

export type CpioEntry =
  | { kind: 'file'; path: string; mode: number; data: Buffer }
  | { kind: 'dir'; path: string; mode: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'chardev'; path: string; mode: number; major: number; minor: number };

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function normalize(p: string): string {
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  if (parts.some((x) => x === '..')) throw new Error(`cpio path ${JSON.stringify(p)} must not contain '..'`);
  return parts.join('/');
}

function header(fields: number[], nameSize: number): string {
  // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check
  return '070701' + [...fields, nameSize, 0].map((n) => n.toString(16).padStart(8, '0')).join('');
}

const pad4 = (n: number) => (4 - (n % 4)) % 4;

/**
 * Serializes entries as a newc archive with a trailer. Later entries with the
 * same path replace earlier ones; missing parent directories are added (0755).
 */
export function writeCpio(entries: CpioEntry[]): Buffer {
  const byPath = new Map<string, CpioEntry>();
  for (const e of entries) {
    const p = normalize(e.path);
    if (!p) continue;
    byPath.set(p, { ...e, path: p });
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!byPath.has(dir)) byPath.set(dir, { kind: 'dir', path: dir, mode: 0o755 });
    }
  }
  const sorted = [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const chunks: Buffer[] = [];
  let ino = 1;
  const push = (mode: number, nlink: number, data: Buffer, name: string, rdev: [number, number] = [0, 0]) => {
    const nameBuf = Buffer.from(name + '\0', 'utf8');
    const h = header([ino++, mode, 0, 0, nlink, 0, data.length, 0, 0, rdev[0], rdev[1]], nameBuf.length);
    chunks.push(Buffer.from(h, 'ascii'), nameBuf, Buffer.alloc(pad4(110 + nameBuf.length)));
    chunks.push(data, Buffer.alloc(pad4(data.length)));
  };
  for (const e of sorted) {
    switch (e.kind) {
      case 'file':
        push(S_IFREG | (e.mode & 0o7777), 1, e.data, e.path);
        break;
      case 'dir':
        push(S_IFDIR | (e.mode & 0o7777), 2, Buffer.alloc(0), e.path);
        break;
      case 'symlink':
        push(S_IFLNK | 0o777, 1, Buffer.from(e.target, 'utf8'), e.path);
        break;
      case 'chardev':
        push(S_IFCHR | (e.mode & 0o7777), 1, Buffer.alloc(0), e.path, [e.major, e.minor]);
        break;
    }
  }
  ino = 0;
  push(0, 1, Buffer.alloc(0), 'TRAILER!!!');
  return Buffer.concat(chunks);
}
