// Runs a TypeScript entry point (benchmarks, fuzz scripts) through tsx,
// forwarding arguments and the exit code.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const tsxCli = require.resolve('tsx/cli');
const r = spawnSync(process.execPath, ['--expose-gc', tsxCli, ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(r.status ?? 1);
