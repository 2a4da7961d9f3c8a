// Entry point of the `mclc` binary (bundled to cli/dist/mclc.mjs).
import { run } from './cli';
import { processContext } from './context';

const ctx = processContext();
const code = await run(process.argv.slice(2), ctx);
// Let pending output drain instead of calling process.exit; the supervisor and `logs --follow` keep the loop alive on purpose.
process.exitCode = code;
