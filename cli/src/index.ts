// @mcl/cli as a library: the backend interface (also at '@mcl/cli/backend') and the command runner.
export * from './backend';
export { run } from './cli';
export { ExitCode } from './exit';
