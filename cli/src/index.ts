// @mcl/cli as a library: the backend interface (from '@mcl/plan/backend') and the command runner.
export * from '@mcl/plan/backend';
export { run } from './cli';
export { ExitCode } from './exit';
