// Go to definition: the declaration a name resolves to, in the workspace or in
// a standard library file (`std:<module>` maps to the stdlib folder).

import type { Location, Position } from 'vscode-languageserver';
import type { Snapshot } from '../analysis';
import { toRange } from '../convert';
import type { ServerContext } from '../service';

export function definition(s: Snapshot, c: ServerContext, file: string, position: Position): Location[] | null {
  const lines = s.lines(file);
  if (!lines) return null;
  const hit = s.refs.symbolAt(file, lines.offsetAt(position));
  if (!hit) return null;
  const target = hit.symbol;
  const targetLines = s.lines(target.file);
  if (!targetLines) return null;
  return [{ uri: c.paths.toUri(target.file), range: toRange(targetLines, target.nameSpan) }];
}
