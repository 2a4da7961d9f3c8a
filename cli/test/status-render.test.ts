// The human form of `mclc status`: created instances name their creator, on the
// instance line (the creating instance) and on each clone (the creating clone).
import { describe, expect, it } from 'vitest';
import type { StatusReport } from '@mcl/plan/backend';
import { renderStatus } from '../src/commands/lifecycle';
import { captureContext } from './capture';

function report(): StatusReport {
  return {
    deployed: true,
    system: 'farm.Farm',
    lineage: 'l',
    serial: 3,
    plan_digest: 'sha256:0',
    supervisor: { running: true, pid: 42 },
    instances: [
      { id: 'coordinator', component: 'farm.Coord', mode: 'single', health: 'healthy', clones: [{ index: 0, state: 'running', restarts: 0 }] },
      {
        id: 'worker',
        component: 'farm.Worker',
        mode: 'created',
        created_by: 'coordinator',
        health: 'healthy',
        clones: [
          { index: 1, state: 'running', restarts: 0, created_by: 'coordinator[0]' },
          { index: 2, state: 'running', restarts: 1, created_by: 'coordinator[0]' },
        ],
      },
    ],
    channels: [],
    exposures: [],
    unwired_violations: [],
    totals: { clones: 3, rss_bytes: 0, pss_bytes: 0, private_bytes: 0 },
  } as StatusReport;
}

describe('mclc status (human output)', () => {
  it('names the creator of a created instance and of each created clone', () => {
    const text = renderStatus(report(), captureContext());
    expect(text).toContain('  worker (farm.Worker, created by coordinator) healthy');
    expect(text).toContain('    #1 running  (created by coordinator#0)');
    expect(text).toContain('    #2 running  (created by coordinator#0, 1 restart)');
    // Instances that were not created at run time say nothing of a creator.
    expect(text).toContain('  coordinator (farm.Coord, single) healthy');
    expect(text).toContain('    #0 running\n');
  });
});
