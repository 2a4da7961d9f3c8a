// Entry point of the `mclc` binary (bundled to cli/dist/mclc.mjs).
import { handleError, run } from './cli';
import { processContext } from './context';
import { ExitCode } from './exit';
import { timings } from './timings';

timings?.mark('start-up');
const ctx = processContext();

// A reader that goes away (`mclc graph | head -1`) is not an error of mclc.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

// Whatever escapes the command handlers is a bug: report it as one, without crashing noisily.
const crash = (e: unknown) => {
  process.exitCode = handleError(e, ctx);
  process.exit(ExitCode.Internal);
};
process.on('uncaughtException', crash);
process.on('unhandledRejection', crash);

const code = await run(process.argv.slice(2), ctx);
// Let pending output drain instead of calling process.exit; the supervisor and `logs --follow` keep the loop alive on purpose.
process.exitCode = code;
