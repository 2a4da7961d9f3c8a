// Reading plan and state files.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { validatePlan, validateState, type DeploymentState, type Plan } from '@mcl/plan';
import { CliError, ExitCode } from './exit';
import { displayPath, readText } from './files';

export function readPlanFile(path: string, cwd: string): Plan {
  return readPlanDocument(path, cwd).plan;
}

/** The plan in a file and the file's text (what a plan signature covers). */
export function readPlanDocument(path: string, cwd: string): { plan: Plan; text: string } {
  const text = readText(path, cwd, 'plan file');
  const shown = displayPath(cwd, path);
  const { plan, errors } = validatePlan(text);
  if (!plan) {
    const lines = errors.slice(0, 10).map((e) => `  ${e.path}: ${e.message}`);
    if (errors.length > 10) lines.push(`  ... and ${errors.length - 10} more`);
    const version = errors.length === 1 && errors[0].path === '$.format_version';
    throw new CliError(
      `${shown} is not a valid plan:\n${lines.join('\n')}`,
      ExitCode.Invalid,
      version ? undefined : 'Write plan files with `mclc plan --out FILE` and do not edit them.',
    );
  }
  return { plan, text };
}

export function defaultStatePath(root: string): string {
  return join(root, '.mcl', 'state.json');
}

/** Reads the state with a plain JSON read (the backend owns writing it); undefined when the file does not exist. */
export function readStateFile(path: string, cwd: string, required: boolean): DeploymentState | undefined {
  if (!existsSync(path)) {
    if (required) throw new CliError(`${displayPath(cwd, path)}: no such state file`, ExitCode.Invalid);
    return undefined;
  }
  const text = readText(path, cwd, 'state file');
  const { state, errors } = validateState(text);
  if (!state) {
    throw new CliError(
      `${displayPath(cwd, path)} is not a valid deployment state:\n${errors.map((e) => `  ${e.path}: ${e.message}`).join('\n')}`,
      ExitCode.Invalid,
      'The state is written by `mclc apply` and `mclc destroy`; restore it from its backup or remove it if nothing is deployed.',
    );
  }
  return state;
}
