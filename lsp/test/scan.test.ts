// The language server's workspace scan uses mclc's one directory walk: it does
// not follow directory links (a loop, or a link to `/`), so opening such a
// workspace neither hangs nor lists a file many times.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PathMapper } from '../src/paths';
import { Workspace } from '../src/workspace';
import { STDLIB } from './harness';

const dir = mkdtempSync(join(tmpdir(), 'mcl-lsp-scan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('workspace scan', () => {
  it('lists each file once and leaves out directory links, hidden entries and special files', () => {
    mkdirSync(join(dir, 'd', '.hidden'), { recursive: true });
    writeFileSync(join(dir, 'a.mcl'), 'type A = int\n');
    writeFileSync(join(dir, 'd', 'b.mcl'), 'type B = int\n');
    writeFileSync(join(dir, 'd', '.c.mcl'), 'type C = int\n');
    writeFileSync(join(dir, 'd', '.hidden', 'e.mcl'), 'type E = int\n');
    symlinkSync('..', join(dir, 'd', 'loop'));
    symlinkSync('/', join(dir, 'd', 'root'));
    execFileSync('mkfifo', [join(dir, 'd', 'pipe.mcl')]);
    const ws = new Workspace(new PathMapper(dir, STDLIB), { readFile: () => undefined, readStdlib: () => undefined });
    ws.scan();
    expect(ws.entries()).toEqual(['a.mcl', 'd/b.mcl']);
  });
});
