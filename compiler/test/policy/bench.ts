// Benchmark of the policy checker on large generated systems. Prints the CPU
// and wall time of checkPolicies for graphs of increasing size, with every
// rule kind present. Run: node scripts/run-ts.mjs compiler/test/policy/bench.ts

import { checkPolicies } from '../../src/policy';
import { generate } from './generate';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

// The machine is shared by many processes, so wall-clock times swing; the CPU
// time of the process (process.cpuUsage) is the figure to compare.
for (const clean of [true, false]) {
  for (const size of [1_000, 10_000, 50_000]) {
    const b = generate(size, 42, clean);
    const times: number[] = [];
    let result = checkPolicies(b.input);
    const runs = size > 10_000 ? 3 : 10;
    const cpu0 = process.cpuUsage();
    for (let run = 0; run < runs; run++) {
      const t0 = performance.now();
      result = checkPolicies(b.input);
      times.push(performance.now() - t0);
    }
    const cpu = process.cpuUsage(cpu0);
    const failed = result.checks.filter((c) => c.status === 'fail').length;
    console.log(
      `${clean ? 'clean ' : 'faulty'} ${String(size).padStart(6)} instances, ${String(b.input.channels.length).padStart(6)} channels, ${b.input.rules.length} rules: ` +
        `cpu ${((cpu.user + cpu.system) / 1000 / runs).toFixed(1)} ms/run, wall median ${median(times).toFixed(1)} ms; ` +
        `${result.checks.length} checks, ${failed} failing, ${result.diagnostics.length} diagnostics`,
    );
  }
}
