// What a command needs from its surroundings, gathered in one place so the
// commands do not reach for globals (and tests can run them in-process).

import { colorEnabled, inAutomation, styler, type Styler } from './io';

export interface Context {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Machine output and command results. */
  out(text: string): void;
  /** Diagnostics, progress and messages for people. */
  err(text: string): void;
  /** Styling for text written with `out` and `err`. */
  outStyle: Styler;
  errStyle: Styler;
  automation: boolean;
}

export function processContext(): Context {
  const env = process.env;
  return {
    cwd: process.cwd(),
    env,
    out: (t) => void process.stdout.write(t),
    err: (t) => void process.stderr.write(t),
    outStyle: styler(colorEnabled(process.stdout, env)),
    errStyle: styler(colorEnabled(process.stderr, env)),
    automation: inAutomation(env),
  };
}
