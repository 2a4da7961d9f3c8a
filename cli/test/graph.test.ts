import { describe, expect, it } from 'vitest';
import { dotToSvg, planToDot } from '../src/graph/dot';
import { instance, webstackPlan } from '../../plan/test/fixtures';
import { expectGolden } from './golden';

describe('graph', () => {
  it('draws instances, channels and exposures as DOT', () => {
    const plan = webstackPlan();
    plan.instances.push(instance('shop.cache', { label: 'internal', mode: 'per_session', replicas: 1, max_sessions: 8 }));
    expectGolden('webstack.dot', planToDot(plan));
  });

  it('escapes names that DOT would misread', () => {
    const plan = webstackPlan();
    plan.system = 'A "quoted" \\ system';
    expect(planToDot(plan)).toContain('digraph "A \\"quoted\\" \\\\ system" {');
  });

  it('renders SVG locally', async () => {
    const svg = await dotToSvg(planToDot(webstackPlan()));
    expect(svg).toMatch(/^<\?xml[^>]*>\s*<!DOCTYPE svg/);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('<title>web&#45;&gt;app</title>');
    expect(svg).toContain('outside');
  });
});
