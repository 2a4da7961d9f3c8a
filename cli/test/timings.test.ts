// MCL_TIMINGS: `mclc plan` writes where its time went, stage by stage, with
// the collector's pauses placed in the stage each began in (what `npm run
// bench` prints for the whole process).

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TimingsDocument } from '../src/timings';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const bundle = join(repo, 'cli/dist/mclc.mjs');
const tmp = mkdtempSync(join(tmpdir(), 'mclc-timings-'));

beforeAll(async () => {
  if (!existsSync(bundle)) await execa('node', [join(repo, 'scripts/build.mjs')], { cwd: repo });
}, 120_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('MCL_TIMINGS', () => {
  it('gives each stage its wall, CPU, main-thread and collector time, and the stages add up to the whole run', async () => {
    const file = join(tmp, 'timings.json');
    // A young generation of one megabyte, so that even this small workspace makes the collector pause.
    const r = await execa('node', ['--max-semi-space-size=1', bundle, 'plan', 'webstack.mcl', '--out', join(tmp, 'w.plan')], {
      cwd: join(repo, 'examples', 'webstack'),
      reject: false,
      timeout: 60_000,
      env: { NO_COLOR: '1', CI: '1', MCL_TIMINGS: file },
    });
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(readFileSync(file, 'utf8')) as TimingsDocument;
    const names = doc.stages.map((s) => s.stage);
    for (const stage of ['start-up', 'workspace', 'read sources', 'lex+parse', 'plan body', 'assemble+digests', 'serialise+write plan', 'report', 'exit']) expect(names).toContain(stage);
    for (const s of doc.stages) {
      expect(s.wall_ms).toBeGreaterThanOrEqual(0);
      expect(s.gc_ms).toBeGreaterThanOrEqual(0);
    }
    // Reading is nested in lexing and parsing, which counts its pauses.
    expect(doc.stages.find((s) => s.stage === 'read sources')!.gc_ms).toBe(0);
    expect(doc.gc_ms).toBeGreaterThan(0);
    expect(doc.stages.reduce((a, s) => a + s.gc_ms, 0)).toBeCloseTo(doc.gc_ms, 6);
    // The main thread's own time, on Linux (its run time in /proc/thread-self/schedstat): part of the
    // process's CPU time, in every stage and in all, and the stages' shares add up to the whole.
    if (process.platform === 'linux') {
      expect(doc.total_main_ms).toBeGreaterThan(0);
      expect(doc.total_main_ms!).toBeLessThanOrEqual(doc.total_cpu_ms + 1);
      for (const s of doc.stages) {
        expect(s.main_ms).toBeGreaterThanOrEqual(0);
        expect(s.main_ms!).toBeLessThanOrEqual(s.cpu_ms + 1);
      }
      const nested = doc.stages.find((s) => s.stage === 'read sources')!;
      expect(nested.main_ms!).toBeLessThanOrEqual(nested.wall_ms + 1);
      expect(doc.stages.reduce((a, s) => a + s.main_ms!, 0)).toBeCloseTo(doc.total_main_ms!, 3);
    }
  }, 120_000);
});
