// `mclc lsp`: the language server, for editors that start a command (Neovim,
// Helix, Zed). The server is its own bundle (lsp/dist/server.cjs, shipped
// beside the CLI's), loaded into this process: it talks LSP over standard
// input and output and exits when the client says `exit` or goes away.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Context } from '../context';
import { CliError, ExitCode, type ExitCodeValue } from '../exit';

/** The server bundle: beside the bundled CLI (`cli/dist/` -> `lsp/dist/`), or in the repository when run from source. */
function serverPath(): string | undefined {
  for (const rel of ['../../lsp/dist/server.cjs', '../../../lsp/dist/server.cjs']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  return undefined;
}

export async function lspCommand(_ctx: Context): Promise<ExitCodeValue> {
  const path = serverPath();
  if (!path) {
    throw new CliError('the language server is not available: lsp/dist/server.cjs was not found beside mclc', ExitCode.Invalid, 'Rebuild with `npm run build`.');
  }
  // The server reads its transport from the command line; standard input and output it is.
  process.argv = [process.argv[0], path, '--stdio'];
  createRequire(import.meta.url)(path);
  return ExitCode.Ok;
}
