// A supervisor that starts reaps the QEMU processes its killed predecessor
// started ahead of time for later forks: they wait in <run>/clones/.pool-*/
// with a pid file, and appear in no processes.json.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { reapOrphans } from '../src/lifecycle/supervise';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

describe('reaping processes started ahead of time', () => {
  it('kills a waiting pool process found by its pid file in the clones directory', async () => {
    const run = mkdtempSync(join(tmpdir(), 'mcl-reap-'));
    dirs.push(run);
    // A stand-in for a pooled QEMU: the reaper checks that the command line names QEMU.
    const child = spawn('sleep', ['1000'], { argv0: 'qemu-fake-pooled', stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    const pid = child.pid!;
    mkdirSync(join(run, 'clones', '.pool-0a1b2c3d'), { recursive: true });
    writeFileSync(join(run, 'clones', '.pool-0a1b2c3d', 'qemu.pid'), `${pid}\n`);
    writeFileSync(join(run, 'processes.json'), '[]\n');
    expect(running(pid)).toBe(true);
    expect(reapOrphans(run)).toEqual([pid]);
    await exited;
    expect(running(pid)).toBe(false);
  });
});
