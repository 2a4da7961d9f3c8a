// An in-process context for running `mclc` commands in tests.
import { styler } from '../src/io';
import type { Context } from '../src/context';

export interface Captured extends Context {
  stdout: string;
  stderr: string;
}

export function captureContext(cwd = process.cwd(), env: NodeJS.ProcessEnv = {}): Captured {
  const c: Captured = {
    cwd,
    env,
    stdout: '',
    stderr: '',
    out: (t) => void (c.stdout += t),
    err: (t) => void (c.stderr += t),
    outStyle: styler(false),
    errStyle: styler(false),
    automation: true,
  };
  return c;
}
