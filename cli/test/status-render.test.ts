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

describe('mclc status (human output): egresses', () => {
  it('shows each egress with its destination and connection counters, refusals in their own words', () => {
    const r = report();
    r.egresses = [
      { name: 'mail', instance: 'relay', port: 'smtp', destination: 'tcp://smtp.example.com:25', connections_open: 1, connections_total: 7, connections_refused: 2, timed_out: 1, violations: 3 },
      { name: 'pay', instance: 'shop', port: 'api', destination: 'https://api.example.com:443/v1', connections_open: 0, connections_total: 0, connections_refused: 0, timed_out: 0, violations: 0 },
    ];
    const text = renderStatus(r, captureContext());
    expect(text).toContain('Egresses:\n');
    expect(text).toContain('  mail: relay.smtp -> tcp://smtp.example.com:25: 1 open, 7 total, 2 refused, 1 timed out, 3 violations');
    expect(text).toContain('  pay: shop.api -> https://api.example.com:443/v1: 0 open, 0 total\n');
    // Without egresses the section is absent.
    expect(renderStatus(report(), captureContext())).not.toContain('Egresses:');
  });
});
