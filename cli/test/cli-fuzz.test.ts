// A short run of the CLI fuzzer (cli-fuzz-core.ts) in the test suite: a fixed
// seed range, so a failure replays with `npm run fuzz:cli -- 1 SEED`. The long
// run is `npm run fuzz:cli -- N`.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeFailure, documentedExitCodes, fuzz } from './cli-fuzz-core';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const bundle = join(repo, 'cli/dist/mclc.mjs');

beforeAll(async () => {
  if (!existsSync(bundle)) await execa('node', [join(repo, 'scripts/build.mjs')], { cwd: repo });
}, 120_000);

describe('CLI fuzzer', () => {
  it('reads the documented exit codes from spec/cli.md', () => {
    expect([...documentedExitCodes(repo)].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 70]);
  });

  it('every case ends in time with a documented exit code other than 70 and bounded output', async () => {
    const documented = documentedExitCodes(repo);
    documented.delete(70);
    // At most 24 cases and 16 s: two at a time on a shared machine.
    const summary = await fuzz(24, 1000, { bundle, repo, timeoutMs: 10_000, documented, parallel: 2, deadlineMs: 16_000 });
    expect(summary.failures.map(describeFailure)).toEqual([]);
    expect(summary.cases).toBeGreaterThanOrEqual(8);
  }, 40_000);
});
