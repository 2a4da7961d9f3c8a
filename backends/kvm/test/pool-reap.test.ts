// A supervisor that starts reaps the QEMU processes its killed predecessor
// started ahead of time for later forks: they wait in <run>/clones/.pool-*/
// with a pid file, and appear in no processes.json.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { reapOrphans } from '../src/lifecycle/daemon';
import { DEPLOYMENT_ENV, ensureRunDir } from '../src/lifecycle/rundir';

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
  it('kills a waiting pool process found by its pid file in the clones directory, only when it carries the token', async () => {
    const ws = mkdtempSync(join(tmpdir(), 'mcl-reap-'));
    dirs.push(ws);
    mkdirSync(join(ws, '.mcl'));
    const rd = ensureRunDir(join(ws, '.mcl', 'state.json'));
    const run = rd.dir;
    // Stand-ins for pooled QEMU: the reaper checks that the command line names QEMU and the environment the token.
    const child = spawn('sleep', ['1000'], { argv0: 'qemu-fake-pooled', stdio: 'ignore', env: { ...process.env, [DEPLOYMENT_ENV]: rd.token } });
    const stranger = spawn('sleep', ['1000'], { argv0: 'qemu-fake-stranger', stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    const pid = child.pid!;
    mkdirSync(join(run, 'clones', '.pool-0a1b2c3d'), { recursive: true });
    writeFileSync(join(run, 'clones', '.pool-0a1b2c3d', 'qemu.pid'), `${pid}\n`);
    mkdirSync(join(run, 'clones', '.pool-99999999'), { recursive: true });
    writeFileSync(join(run, 'clones', '.pool-99999999', 'qemu.pid'), `${stranger.pid}\n`);
    writeFileSync(join(run, 'processes.json'), JSON.stringify([{ pid: stranger.pid, start_time: null }]));
    expect(running(pid)).toBe(true);
    expect(reapOrphans(rd)).toEqual([pid]);
    await exited;
    expect(running(pid)).toBe(false);
    // A process named by the files but not started for this deployment is left alone.
    expect(running(stranger.pid!)).toBe(true);
    stranger.kill('SIGKILL');
  });
});
