// The nested-Xen harness's own bookkeeping, without booting anything: run
// directories left by an owner that died are removed, and only those.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pvhConfig, sweepStaleRunDirs } from './harness';

let parent: string;
afterEach(() => rmSync(parent, { recursive: true, force: true }));

describe('nested-Xen harness', () => {
  it('removes the run directories of dead owners and keeps the others', () => {
    parent = mkdtempSync(path.join(os.tmpdir(), 'nx-sweep-'));
    // A pid that surely ended: a child that ran and was reaped.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    const mk = (name: string, owner?: string) => {
      mkdirSync(path.join(parent, name));
      if (owner !== undefined) writeFileSync(path.join(parent, name, 'owner'), `${owner}\n`);
    };
    mk('mcl-nx-dead1', dead);
    mk('mcl-nx-alive1', String(process.pid));
    // Without an owner record it is not known to be ours: left alone, as is anything not named mcl-nx-*.
    mk('mcl-nx-norec');
    mk('other-dir', dead);
    expect(sweepStaleRunDirs(parent)).toEqual([path.join(parent, 'mcl-nx-dead1')]);
    expect(existsSync(path.join(parent, 'mcl-nx-dead1'))).toBe(false);
    for (const n of ['mcl-nx-alive1', 'mcl-nx-norec', 'other-dir']) expect(existsSync(path.join(parent, n))).toBe(true);
  });

  it('writes a PVH guest config with no network and no disk', () => {
    parent = mkdtempSync(path.join(os.tmpdir(), 'nx-cfg-'));
    const cfg = pvhConfig('nx-x', 64);
    expect(cfg).toMatch(/^type = "pvh"$/m);
    expect(cfg).toMatch(/^memory = 64$/m);
    expect(cfg).toMatch(/^vif = \[\]$/m);
    expect(cfg).toMatch(/^disk = \[\]$/m);
  });
});
