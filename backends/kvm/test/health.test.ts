// Health from outside the guest: the verdicts from QMP's run state, the
// agent's ping and the process, the console's last lines, and the monitor
// over a supervisor's clones.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HealthMonitor, judge, judgeExit, tailLines } from '../src/lifecycle/health';
import { Supervisor } from '../src/lifecycle/supervisor';
import type { GuestProbe } from '../src/lifecycle/guest-runtime';
import { FakeBroker, FakeRuntime, inst, plan } from './fixtures/fakes';

const p = (probe: GuestProbe, alive = true, agentSeenAt: number | null = 0) => ({ probe, alive, at: 10_000, agentSeenAt, pid: 42 });

describe('health verdicts', () => {
  it('tells a running guest from a hung guest, a crashed guest, a hung QEMU and a gone QEMU', () => {
    expect(judge('running', p({ vcpu: 'running', agent_ms: 3 }), 10_000)).toMatchObject({ verdict: 'ok', vcpu: 'running', agent_ms: 3 });
    expect(judge('running', p({ vcpu: 'running', agent_ms: null }, true, 4_000), 10_000)).toMatchObject({
      verdict: 'guest_hung',
      detail: 'the vCPUs run (running) but the guest agent has not answered for 6 s',
    });
    expect(judge('running', p({ vcpu: 'guest-panicked', agent_ms: null }), 10_000)).toMatchObject({ verdict: 'guest_crashed', detail: 'QEMU reports the guest panicked' });
    expect(judge('running', p({ vcpu: null, agent_ms: null }), 10_000)).toMatchObject({ verdict: 'qemu_hung' });
    expect(judge('running', p({ vcpu: 'running', agent_ms: 1 }, false), 10_000)).toMatchObject({ verdict: 'qemu_gone' });
    expect(judge('paused', p({ vcpu: 'paused', agent_ms: null }), 10_000)).toMatchObject({ verdict: 'paused' });
    expect(judge('running', undefined, 0)).toMatchObject({ verdict: 'unknown' });
  });

  it('judges a clone that is down by how it ended', () => {
    expect(judgeExit('program exited with status 3')).toMatchObject({ verdict: 'program_exited' });
    expect(judgeExit('killed by SIGKILL')).toMatchObject({ verdict: 'qemu_gone', detail: expect.stringMatching(/no report from the guest \(killed by SIGKILL\)/) });
    expect(judgeExit(undefined)).toBeNull();
  });

  it('reads the last console lines, bounded, without control characters', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcl-health-'));
    try {
      const f = join(dir, 'console.log');
      writeFileSync(f, 'x'.repeat(20_000) + '\n' + Array.from({ length: 30 }, (_, i) => `line ${i}\x1b[0m\r`).join('\n') + '\n');
      expect(tailLines(f, 3)).toEqual(['line 27[0m', 'line 28[0m', 'line 29[0m']);
      expect(tailLines(join(dir, 'missing'))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('health monitor over a supervisor', () => {
  let dir: string;
  let rt: FakeRuntime;
  let sup: Supervisor;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mcl-health-'));
    rt = new FakeRuntime();
    sup = new Supervisor({ runtime: rt, brokerFactory: (pl, h) => new FakeBroker(pl, h), runDir: dir, backoffMs: 60_000 });
  });
  afterEach(async () => {
    await sup.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('status distinguishes a hung guest (with its console) from a crashed program and a gone QEMU', async () => {
    await sup.apply(plan([inst('web'), inst('app'), inst('db')]), { replace: [], readyTimeoutMs: 1000 }, () => undefined);
    const [web, app, db] = ['web', 'app', 'db'].map((id) => rt.live(id)[0]);
    // The fake clones are this process (alive); web's agent stops answering.
    for (const c of [web, app, db]) Object.assign(c, { pid: process.pid });
    const probes = new Map<string, GuestProbe>([
      ['web', { vcpu: 'running', agent_ms: null }],
      ['app', { vcpu: 'running', agent_ms: 2 }],
    ]);
    for (const c of [web, app]) (c as unknown as { probe: (t: number) => Promise<GuestProbe> }).probe = async () => probes.get(c.req.instance.id)!;
    writeFileSync(web.consoleLog, 'booted\nBUG: soft lockup - CPU#0 stuck for 22s!\n');
    const h = new HealthMonitor(sup);
    await h.probeAll();
    // db's program ended with status 3 (reported by its agent), app's QEMU is killed from outside.
    db.crash({ code: null, signal: 'SIGKILL', program_code: 3 });
    await new Promise((r) => setTimeout(r, 10));
    const byId = Object.fromEntries(h.annotate(sup.instanceStatus()).map((i) => [i.id, i.clones[0].health]));
    expect(byId.web).toMatchObject({ verdict: 'guest_hung', vcpu: 'running', agent_ms: null, console_tail: ['booted', 'BUG: soft lockup - CPU#0 stuck for 22s!'] });
    expect(byId.app).toMatchObject({ verdict: 'ok' });
    expect(byId.db).toMatchObject({ verdict: 'program_exited' });
    app.crash({ code: null, signal: 'SIGKILL' });
    await new Promise((r) => setTimeout(r, 10));
    expect(h.annotate(sup.instanceStatus()).find((i) => i.id === 'app')!.clones[0].health).toMatchObject({ verdict: 'qemu_gone' });
  });
});
