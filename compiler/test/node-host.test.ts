// NodeHost reads the workspace and the standard library from disk and refuses
// anything outside them, including through symbolic links.

import { afterAll, describe, expect, test } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { NodeHost } from '../src/node-host';
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
