// Exit codes of `mclc`, documented in `mclc --help`, spec/cli.md and the README.
// Scripts depend on them, so they never change meaning.

export const ExitCode = {
  /** Success; for `plan --detailed-exitcode`, success with no changes. */
  Ok: 0,
  /** Invalid source (errors outside the policy range) or a usage error. */
  Invalid: 1,
  /** `plan --detailed-exitcode` only: the plan has changes to apply. */
  Changes: 2,
  /** The sources are well-formed but a policy is violated (every error is an MCL05xx). */
  PolicyViolated: 3,
  /** `fmt --check`: some files are not formatted. */
  Unformatted: 4,
  /** The backend failed to apply, destroy or inspect the deployment. */
  BackendFailure: 5,
  /** The plan is stale (the state changed since planning) or the state is locked by another process. */
  StaleOrLocked: 6,
  /** A bug in mclc itself: an internal error with a bug-report hint. */
  Internal: 70,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export const EXIT_CODE_HELP = `Exit codes:
  0   success (plan --detailed-exitcode: no changes)
  1   invalid source or usage error
  2   changes pending (plan --detailed-exitcode only)
  3   a policy is violated (every error is an MCL05xx diagnostic)
  4   files are not formatted (fmt --check)
  5   the backend failed (apply, destroy, status, logs, doctor)
  6   stale plan or state locked by another process
  70  internal error in mclc (please report it)`;

/**
 * An expected failure with a message for people: bad usage, a missing file, a
 * plan that does not validate. The top-level handler prints it without a stack
 * trace and exits with `code`.
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code: ExitCodeValue = ExitCode.Invalid,
    readonly hint?: string,
  ) {
    super(message);
  }
}
