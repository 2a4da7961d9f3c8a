// The disk side of the compiler host. Open documents are layered on top of it
// by the Workspace.

import type { CompilerHost } from '@mcl/compiler';
import { NodeHost } from '@mcl/compiler/node-host';
import type { PathMapper } from './paths';

export function createBaseHost(paths: PathMapper): CompilerHost {
  // The standard library folder can change while the server runs (a settings
  // change), so the host follows the mapper's current folder.
  let host = new NodeHost(paths.root, paths.stdlibDir);
  let dir = paths.stdlibDir;
  const current = (): NodeHost => {
    if (dir !== paths.stdlibDir) {
      dir = paths.stdlibDir;
      host = new NodeHost(paths.root, dir);
    }
    return host;
  };
  return {
    readFile: (path) => current().readFile(path),
    readStdlib: (modulePath) => current().readStdlib(modulePath),
    unreadable: (path) => current().unreadable?.(path),
    sha256: (text) => current().sha256!(text),
  };
}
