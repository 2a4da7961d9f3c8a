import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { graphCommand } from '../src/commands/compile-commands';
import { dotToSvg, planToDot } from '../src/graph/dot';
import { captureContext } from './capture';
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

  describe('of sources that break their policies', () => {
    const broken = fileURLToPath(new URL('../../examples/broken/', import.meta.url));
    const graph = async (file: string) => {
      const ctx = captureContext(broken);
      const code = await graphCommand(ctx, [file], {});
      return { code, dot: ctx.stdout, stderr: ctx.stderr };
    };
    const MARK = 'color=red, fontcolor=red, penwidth=2';

    it('draws the path of a flow violation in red, names the checks and exits with 3', async () => {
      const r = await graph('flow.mcl');
      expect(r.code).toBe(3);
      expect(r.stderr).toContain('MCL0508');
      expect(r.dot).toContain(`"frontend" -> "vault" [label="std.kv.Kv", tooltip="frontend.store->vault.kv\\nfails: flow:lattice, flow:no-flow:secret->frontend", taillabel="store", headlabel="kv", labelfontsize=8, ${MARK}];`);
      expect(r.dot).toMatch(new RegExp(`"vault" \\[[^\\n]*${MARK}\\];`));
    });

    it('marks the channel that bypasses a required hop, and only that one', async () => {
      const r = await graph('reachability.mcl');
      expect(r.code).toBe(3);
      const edges = r.dot.split('\n').filter((l) => l.includes(' -> '));
      expect(edges.filter((l) => l.includes(MARK)).map((l) => l.trim().split(' [')[0])).toEqual(['"reports" -> "db"']);
    });

    it('marks an exposure the policy does not list', async () => {
      const r = await graph('exposure.mcl');
      expect(r.code).toBe(3);
      expect(r.dot).toMatch(new RegExp(`"outside" -> "web" \\[label="tcp 9090[^\\n]*fails: exposure:exposed-only", ${MARK}\\];`));
    });

    it('draws nothing for a malformed rule, which is a source error (exit 1)', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'mclc-graph-'));
      try {
        const text = readFileSync(join(broken, 'reachability.mcl'), 'utf8').replace('\n    db only through app', '\n    db only through nowhere');
        writeFileSync(join(dir, 'reachability.mcl'), text);
        const ctx = captureContext(dir);
        expect(await graphCommand(ctx, ['reachability.mcl'], {})).toBe(1);
        expect(ctx.stderr).toContain('MCL0515');
        expect(ctx.stdout).toBe('');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('still draws nothing when the sources have other errors', async () => {
      const r = await graph('syntax.mcl');
      expect(r.code).toBe(1);
      expect(r.dot).toBe('');
    });
  });
});
