import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError } from '../src/exit';
import { parseDuration } from '../src/commands/lifecycle';
import { absoluteSourcePath, lifecycleRoot, resolveWorkspace } from '../src/workspace';

const dir = mkdtempSync(join(tmpdir(), 'mclc-ws-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
for (const f of ['a/x.mcl', 'a/sub/y.mcl', 'b/z.mcl', 'a/node_modules/dep/n.mcl', 'a/.mcl/s.mcl', 'a/readme.txt']) {
  mkdirSync(join(dir, f, '..'), { recursive: true });
  writeFileSync(join(dir, f), '');
}

describe('workspace resolution', () => {
  it('takes every .mcl file under a directory, skipping dependencies and runtime data', () => {
    expect(resolveWorkspace(['a'], { cwd: dir })).toEqual({ root: join(dir, 'a'), entries: ['sub/y.mcl', 'x.mcl'] });
  });

  it('roots several paths at their common directory', () => {
    expect(resolveWorkspace(['a/sub/y.mcl', 'b'], { cwd: dir })).toEqual({ root: dir, entries: ['a/sub/y.mcl', 'b/z.mcl'] });
    expect(resolveWorkspace(['a/x.mcl'], { cwd: dir }).root).toBe(join(dir, 'a'));
  });

  it('honours --root and refuses paths outside it', () => {
    expect(resolveWorkspace(['a/sub'], { cwd: dir, root: 'a' })).toEqual({ root: join(dir, 'a'), entries: ['sub/y.mcl'] });
    expect(() => resolveWorkspace(['b/z.mcl'], { cwd: dir, root: 'a' })).toThrow(/outside the workspace root a/);
  });

  it('reports missing paths and empty directories as usage errors', () => {
    expect(() => resolveWorkspace(['nope'], { cwd: dir })).toThrow(CliError);
    mkdirSync(join(dir, 'empty'));
    expect(() => resolveWorkspace(['empty'], { cwd: dir })).toThrow(/no .mcl files found in empty/);
  });

  it('maps standard library files into the stdlib directory', () => {
    expect(absoluteSourcePath('std:http', '/w', '/lib')).toBe('/lib/http.mcl');
    expect(absoluteSourcePath('std:net.tcp', '/w', '/lib')).toBe('/lib/net/tcp.mcl');
    expect(absoluteSourcePath('shop/a.mcl', '/w', '/lib')).toBe('/w/shop/a.mcl');
  });

  it('finds the deployment of a lifecycle command at or above the current directory', () => {
    expect(lifecycleRoot(undefined, join(dir, 'a', 'sub'))).toBe(join(dir, 'a'));
    expect(lifecycleRoot('b', dir)).toBe(join(dir, 'b'));
  });

  it('parses durations as the language writes them', () => {
    expect([parseDuration('500ms', 'x'), parseDuration('30s', 'x'), parseDuration('2min', 'x'), parseDuration('1h', 'x'), parseDuration('1.5', 'x')]).toEqual([
      500, 30000, 120000, 3600000, 1500,
    ]);
    expect(() => parseDuration('soon', '--lock-timeout')).toThrow('--lock-timeout "soon" is not a duration');
  });
});
