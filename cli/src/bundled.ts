// Packages kept out of mclc's bundle: the Prettier plugin (Prettier does not
// survive being bundled into an ESM file with the CommonJS shims) and the
// KubeVirt backend (its dependencies are large).

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Loads a package kept out of the bundle: the bundled CLI loads the package's
 * own bundle beside it in the distribution (`distFromCli`, relative to
 * cli/dist/mclc.mjs), and the CLI run from source loads the package. The
 * specifier is computed from its parts so the bundler leaves the import alone.
 */
export async function importBundled(distFromCli: string, pkg: readonly string[]): Promise<unknown> {
  const here = import.meta.url;
  const dist = new URL(distFromCli, here);
  if (here.endsWith('.mjs') && existsSync(fileURLToPath(dist))) return import(dist.href);
  return import(pkg.join('/'));
}
