// The CLI fuzzer at length (cli/test/cli-fuzz-core.ts): random and mutated
// sources, long lines, binary files, mutated plans and odd paths, each run
// through the bundled `mclc` with a deadline.
//
//   npm run fuzz:cli -- 2000            # number of cases (default 500)
//   npm run fuzz:cli -- 1 1234          # replay one case by its seed
//   npm run fuzz:cli -- 2000 1 4 8000   # cases, first seed, parallel runs (default 2), deadline per case in ms (default 10000)

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeFailure, documentedExitCodes, fuzz } from '../test/cli-fuzz-core';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const [count = 500, firstSeed = Date.now() % 1_000_000, parallel = 2, timeoutMs = 10_000] = process.argv.slice(2).map(Number);
const documented = documentedExitCodes(repo);
documented.delete(70);

let done = 0;
const summary = await fuzz(count, firstSeed, {
  bundle: join(repo, 'cli/dist/mclc.mjs'),
  repo,
  timeoutMs,
  documented,
  parallel,
  onOutcome: (o) => {
    done++;
    if (o.problem) console.log(`FAIL ${describeFailure(o)}\n  replay: npm run fuzz:cli -- 1 ${o.c.seed}`);
    else if (done % 50 === 0) process.stderr.write(`${done} cases...\n`);
  },
});
const list = (m: Map<unknown, number>) => [...m].map(([k, v]) => `${k === null ? 'signal' : k}: ${v}`).join(', ');
console.log(
  `${summary.cases} cases from seed ${firstSeed} in ${summary.seconds.toFixed(1)} s (${parallel} at a time): ${summary.failures.length} failures; ` +
    `slowest ${summary.slowestMs.toFixed(0)} ms (${summary.retried} run again after running out of time), largest output ${summary.maxOutBytes} bytes\n  by kind: ${list(summary.byKind)}\n  by exit code: ${list(summary.byCode)}`,
);
process.exit(summary.failures.length ? 1 : 0);
