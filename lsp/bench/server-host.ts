// What the language server gives the compiler, rebuilt for the benchmarks that
// compile the bench's edits in their own process: a parse cache that keeps one
// parse per file while its text is the same, and a host that reads the edited
// document from memory and every other file from disk once, as the server
// caches the disk until a change is reported.

import type { CompilerHost, ParseCache, ParsedSource } from '@mcl/compiler';
import { NodeHost } from '@mcl/compiler/node-host';
import { STDLIB } from '../test/harness';

export interface ServerLikeHost {
  cache: ParseCache;
  host: CompilerHost;
  /** Gives the edited file this text from the next compile on. */
  edit(text: string): void;
}

export function serverLikeHost(root: string, editFile: string, text: string): ServerLikeHost {
  const parses = new Map<string, { text: string; parsed: ParsedSource }>();
  const cache: ParseCache = {
    get: (path, t) => (parses.get(path)?.text === t ? parses.get(path)!.parsed : undefined),
    set: (path, t, parsed) => void parses.set(path, { text: t, parsed }),
  };
  const disk = new NodeHost({ root, stdlib: STDLIB });
  const read = new Map<string, string | undefined>();
  let edited = text;
  const host: CompilerHost = {
    readFile: (p: string) => (p === editFile ? edited : read.has(p) ? read.get(p) : (read.set(p, disk.readFile(p)), read.get(p))),
    readStdlib: (m: string) => disk.readStdlib(m),
  };
  return { cache, host, edit: (t) => void (edited = t) };
}
