// Expected failures of the lifecycle commands. The CLI recognises them by
// their string `kind` (@mcl/plan/backend) and maps it to an exit code; the
// message says what went wrong and the hint how to get past it.

import type { BackendErrorKind } from '@mcl/plan/backend';

export type { BackendErrorKind };

export class BackendFailure extends Error {
  readonly kind: BackendErrorKind;
  readonly hint?: string;
  constructor(kind: BackendErrorKind, message: string, hint?: string) {
    super(message);
    this.name = 'BackendFailure';
    this.kind = kind;
    if (hint !== undefined) this.hint = hint;
  }
}
