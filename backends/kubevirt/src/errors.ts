// Expected failures, as the backend contract (@mcl/plan/backend) defines them:
// an Error with a `kind` the CLI maps to an exit code, and a hint.

import type { BackendError, BackendErrorKind } from '@mcl/plan/backend';

function make(kind: BackendErrorKind, message: string, hint?: string): BackendError {
  return Object.assign(new Error(message), { kind, ...(hint ? { hint } : {}) }) as BackendError;
}

export const failure = (message: string, hint?: string) => make('failure', message, hint);
export const usage = (message: string, hint?: string) => make('usage', message, hint);
export const stale = (message: string, hint?: string) => make('stale', message, hint);
export const locked = (message: string, hint?: string) => make('locked', message, hint);
