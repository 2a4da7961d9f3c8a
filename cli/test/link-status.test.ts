import { describe, expect, it } from 'vitest';
import type { StatusReport } from '@mcl/plan/backend';
import { renderStatus } from '../src/commands/lifecycle';
import { styler } from '../src/io';
import type { Context } from '../src/context';

const ctx = { outStyle: styler(false) } as Context;

function report(links?: StatusReport['links']): StatusReport {
  return {
    deployed: true,
    system: 'shop.Shop',
    lineage: 'l',
    serial: 3,
    plan_digest: 'd',
    supervisor: { running: true, pid: 42 },
    instances: [],
    channels: [],
    exposures: [],
    ...(links ? { links } : {}),
    unwired_violations: [],
    totals: { clones: 0, rss_bytes: 0, pss_bytes: 0, private_bytes: 0 },
  };
}

describe('status: links between hosts', () => {
  it('shows each link: state, bytes each way, the ping round trip, what it refused, what it carries', () => {
    const text = renderStatus(
      report([
        { peer: 'node2', address: '10.0.0.2:7400', state: 'up', since: Date.UTC(2026, 11, 6, 3, 0, 0), bytes_out: 2048, bytes_in: 1024, frames_out: 10, frames_in: 9, latency_ms: 0.42, latency_p50_ms: 0.4, latency_p99_ms: 1.25, connects: 2, refused: { forged: 1 }, channels: ['web.db->db.sql'] },
        { peer: 'node3', address: '(listening)', state: 'down', since: Date.UTC(2026, 11, 6, 3, 1, 0), bytes_out: 0, bytes_in: 0, frames_out: 0, frames_in: 0, latency_ms: null, latency_p50_ms: null, latency_p99_ms: null, connects: 0, refused: {}, channels: [] },
      ]),
      ctx,
    );
    expect(text).toContain('Links:\n');
    expect(text).toContain('  node2 10.0.0.2:7400: up since 2026-12-06T03:00:00.000Z, 2KiB out / 1KiB in, ping 0.42 ms (p50 0.40, p99 1.25), 2 connects');
    expect(text).toContain('    refused: forged 1');
    expect(text).toContain('    carries web.db->db.sql');
    expect(text).toContain('  node3 (listening): down since 2026-12-06T03:01:00.000Z, 0B out / 0B in, no ping answered yet, 0 connects');
  });

  it('has no links section for a deployment on one host', () => {
    expect(renderStatus(report(), ctx)).not.toContain('Links:');
  });
});
