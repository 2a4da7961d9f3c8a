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
    // At most 24 cases, started within 14 s, two at a time. A case gets 15 s (and a second run when it
    // does not finish) because the suite shares the machine: a real hang never ends, a slow case does.
    const summary = await fuzz(24, 1000, { bundle, repo, timeoutMs: 15_000, documented, parallel: 2, deadlineMs: 14_000 });
    expect(summary.failures.map(describeFailure)).toEqual([]);
    expect(summary.cases).toBeGreaterThanOrEqual(4);
  }, 90_000);
});
