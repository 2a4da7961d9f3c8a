// The disk side of the compiler host. Open documents are layered on top of it
// by the Workspace.

import type { CompilerHost } from '@mcl/compiler';
import { NodeHost } from '@mcl/compiler/node-host';
import type { PathMapper } from './paths';

export function createBaseHost(paths: PathMapper): CompilerHost {
  return new NodeHost(paths.root, paths.stdlibDir);
}
