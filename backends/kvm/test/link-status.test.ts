import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LinkStatus } from '@mcl/plan/backend';
import { Supervisor } from '../src/lifecycle/supervisor';
import { FakeBroker, FakeRuntime, inst, plan } from './fixtures/fakes';

describe('supervisor: links between hosts', () => {
  let dir: string;
  let sup: Supervisor;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mcl-sup-link-'));
    FakeBroker.all = [];
    sup = new Supervisor({ runtime: new FakeRuntime(), brokerFactory: (p, h) => new FakeBroker(p, h), runDir: dir, backoffMs: 5, maxBackoffMs: 20 });
  });
  afterEach(async () => {
    await sup.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports the links of its broker, and none before a broker or from a broker without links', async () => {
    expect(sup.linkStatus()).toEqual([]);
    await sup.apply(plan([inst('db')], [], 'p1'), { replace: [], readyTimeoutMs: 1000 }, () => {});
    expect(sup.linkStatus()).toEqual([]);
    const link: LinkStatus = { peer: 'b', address: '10.0.0.2:7400', state: 'up', since: 1, bytes_out: 1, bytes_in: 2, frames_out: 1, frames_in: 1, latency_ms: 0.5, latency_p50_ms: 0.5, latency_p99_ms: 0.5, connects: 1, refused: {}, channels: ['x->y'] };
    (FakeBroker.all[0] as FakeBroker & { linkStatus(): LinkStatus[] }).linkStatus = () => [link];
    expect(sup.linkStatus()).toEqual([link]);
  });
});
