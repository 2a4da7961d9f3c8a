// The backends this mclc deploys to, one row each: adding a backend is adding
// its package to cli/package.json and a row here. Each module implements the
// contract in @mcl/plan/backend and is imported only when a lifecycle command
// runs, so compiling, planning and formatting work even where a backend is
// missing or broken.

import { existsSync, readFileSync, statSync } from 'node:fs';
import type { BackendName } from '@mcl/plan';
import { BACKEND_FUNCTIONS, type BackendModule } from '@mcl/plan/backend';
import { importBundled } from './bundled';
import { CliError, ExitCode } from './exit';

export interface BackendRow {
  /** The name a target's `backend` statement, a plan's `target.backend` and a state's `backend` use. */
  name: BackendName;
  /** How messages name it, e.g. "the KVM backend". */
  title: string;
  load(): Promise<unknown>;
}

export const BACKENDS: readonly BackendRow[] = [
  { name: 'kvm', title: 'KVM', load: () => import('@mcl/backend-kvm') },
  { name: 'xen', title: 'Xen', load: () => import('@mcl/backend-xen') },
  { name: 'kubevirt', title: 'KubeVirt', load: () => importBundled('../../backends/kubevirt/dist/index.mjs', ['@mcl', 'backend-kubevirt']) },
];

/** The backend of commands that have neither a plan nor a deployment to say which (`doctor`, a first `status`). */
export const DEFAULT_BACKEND: BackendRow = BACKENDS[0];

/** The row of a backend name, or a usage error naming the backends there are. */
export function backendRow(name: string, what: string): BackendRow {
  const row = BACKENDS.find((b) => b.name === name);
  if (row) return row;
  throw new CliError(
    `${what} the ${name} backend, which this mclc cannot deploy to`,
    ExitCode.Invalid,
    `This mclc deploys with: ${BACKENDS.map((b) => b.name).join(', ')}.`,
  );
}

/** Loads a backend's module, checking that it has every function of the contract. */
export async function loadBackend(row: BackendRow): Promise<BackendModule> {
  let mod: Record<string, unknown>;
  try {
    mod = (await row.load()) as Record<string, unknown>;
  } catch (e) {
    throw new CliError(
      `the ${row.title} backend could not be loaded: ${(e as Error).message.split('\n')[0]}`,
      ExitCode.BackendFailure,
      'Install the workspace dependencies (`npm ci`) and rebuild (`npm run build`).',
    );
  }
  const missing = BACKEND_FUNCTIONS.filter((f) => typeof mod[f] !== 'function');
  if (missing.length) {
    throw new CliError(`the ${row.title} backend in this build is incomplete: it does not provide ${missing.join(', ')}`, ExitCode.BackendFailure);
  }
  return mod as unknown as BackendModule;
}

/** Larger state files are left to the backend, which reads and validates them under its lock. */
const STATE_PEEK_BYTES = 64 * 1024 * 1024;

/**
 * The backend that made the deployment whose state is `stateFile`: its
 * `backend` field, or the default backend when there is no state or it
 * cannot be read (the backend then reports that itself, under its lock).
 */
export function deploymentBackend(stateFile: string): BackendRow {
  let name: unknown;
  try {
    if (!existsSync(stateFile) || !statSync(stateFile).isFile() || statSync(stateFile).size > STATE_PEEK_BYTES) return DEFAULT_BACKEND;
    name = (JSON.parse(readFileSync(stateFile, 'utf8')) as { backend?: unknown } | null)?.backend;
  } catch {
    return DEFAULT_BACKEND;
  }
  return typeof name === 'string' ? backendRow(name, `the deployment in ${stateFile} was made with`) : DEFAULT_BACKEND;
}
