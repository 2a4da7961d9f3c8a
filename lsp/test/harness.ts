// Test harness: runs the real bundled server (`node lsp/dist/server.cjs
// --stdio`) in a temporary workspace and talks JSON-RPC to it.
//
// Fixtures are inline text with markers: `$0`..`$9` mark cursor positions and
// `[|...|]` marks ranges (numbered in order). Markers are removed before the
// text is written or sent.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import {
  createProtocolConnection,
  StreamMessageReader,
  StreamMessageWriter,
  PublishDiagnosticsNotification,
  type Diagnostic,
  type ProtocolConnection,
  type Position,
  type Range,
} from 'vscode-languageserver-protocol/node';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SERVER = join(REPO, 'lsp', 'dist', 'server.cjs');
export const STDLIB = join(REPO, 'stdlib');

const SOURCE_DIRS = ['lsp/src', 'compiler/src', 'language/src', 'plan/src', 'prettier-plugin/src'];

function newestMtime(dir: string): number {
  let newest = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Builds lsp/dist/server.cjs the way scripts/build.mjs does when any source it
 * bundles is newer than the bundle, so `vitest run lsp` always tests current
 * code. The bundle is written beside and renamed, so parallel test files
 * never see half a file.
 */
export async function ensureServerBuilt(): Promise<void> {
  let built = 0;
  try {
    built = statSync(SERVER).mtimeMs;
  } catch {
    built = 0;
  }
  const newest = Math.max(...SOURCE_DIRS.map((d) => newestMtime(join(REPO, d))));
  if (built >= newest) return;
  mkdirSync(dirname(SERVER), { recursive: true });
  const tmp = `${SERVER}.${process.pid}.tmp`;
  await build({
    entryPoints: [join(REPO, 'lsp/src/server.ts')],
    outfile: tmp,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    logLevel: 'error',
    legalComments: 'none',
  });
  renameSync(tmp, SERVER);
}

export interface Fixture {
  text: string;
  /** Cursor offsets by marker digit. */
  cursors: number[];
  ranges: { start: number; end: number }[];
}

export function parseFixture(marked: string): Fixture {
  let text = '';
  const cursors: number[] = [];
  const ranges: { start: number; end: number }[] = [];
  const open: number[] = [];
  const openOrder: number[] = [];
  for (let i = 0; i < marked.length; ) {
    if (marked[i] === '$' && /[0-9]/.test(marked[i + 1] ?? '')) {
      cursors[Number(marked[i + 1])] = text.length;
      i += 2;
    } else if (marked.startsWith('[|', i)) {
      open.push(text.length);
      openOrder.push(ranges.length);
      ranges.push({ start: text.length, end: text.length });
      i += 2;
    } else if (marked.startsWith('|]', i)) {
      const start = open.pop()!;
      const idx = openOrder.pop()!;
      ranges[idx] = { start, end: text.length };
      i += 2;
    } else {
      text += marked[i];
      i++;
    }
  }
  return { text, cursors, ranges };
}

/** LSP position of an offset in a text. */
export function positionAt(text: string, offset: number): Position {
  let line = 0;
  let lineStart = 0;
  for (let i = 0; i < offset; i++) {
    if (text[i] === '\n') {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, character: offset - lineStart };
}

export function rangeOf(text: string, span: { start: number; end: number }): Range {
  return { start: positionAt(text, span.start), end: positionAt(text, span.end) };
}

/** The text of a diagnostic's message (LSP 3.18 also allows markup). */
export function msg(d: Diagnostic): string {
  return typeof d.message === 'string' ? d.message : d.message.value;
}

export function makeWorkspace(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'mcl-lsp-'));
  for (const [path, text] of Object.entries(files)) {
    const full = join(root, path);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, text);
  }
  return root;
}

export interface Client {
  root: string;
  conn: ProtocolConnection;
  proc: ChildProcessWithoutNullStreams;
  uri(path: string): string;
  /** Latest published diagnostics by URI. */
  diagnostics: Map<string, Diagnostic[]>;
  /** Resolves with the next diagnostics for `uri` that satisfy `pred` (or the current ones if they already do). */
  waitForDiagnostics(path: string, pred?: (d: Diagnostic[]) => boolean, timeoutMs?: number): Promise<Diagnostic[]>;
  open(path: string, text: string): void;
  change(path: string, text: string): void;
  stderr(): string;
  close(): Promise<void>;
}

export async function startClient(
  files: Record<string, string>,
  initializationOptions: Record<string, unknown> = {},
  extraCapabilities: Record<string, unknown> = {},
): Promise<Client> {
  await ensureServerBuilt();
  const root = makeWorkspace(files);
  const proc = spawn(process.execPath, [SERVER, '--stdio'], { cwd: root, env: { ...process.env, MCL_STDLIB: STDLIB } });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const conn = createProtocolConnection(new StreamMessageReader(proc.stdout), new StreamMessageWriter(proc.stdin));
  const diagnostics = new Map<string, Diagnostic[]>();
  let listeners: (() => void)[] = [];
  conn.onNotification(PublishDiagnosticsNotification.type, (p) => {
    diagnostics.set(p.uri, p.diagnostics);
    const ls = listeners;
    listeners = [];
    for (const l of ls) l();
  });
  // Server log messages are kept out of the test output.
  conn.onNotification('window/logMessage', () => undefined);
  conn.onRequest('client/registerCapability', () => null);
  conn.onRequest('workspace/configuration', () => []);
  conn.listen();
  const rootUri = pathToFileURL(root).href;
  await conn.sendRequest('initialize', {
    processId: process.pid,
    rootUri,
    workspaceFolders: [{ uri: rootUri, name: 'test' }],
    capabilities: {
      textDocument: {
        publishDiagnostics: { relatedInformation: true, versionSupport: true, tagSupport: { valueSet: [1, 2] } },
        hover: { contentFormat: ['markdown', 'plaintext'] },
        rename: { prepareSupport: true },
        completion: { completionItem: { snippetSupport: true } },
        documentSymbol: { hierarchicalDocumentSymbolSupport: true },
      },
      workspace: { workspaceFolders: true },
      ...extraCapabilities,
    },
    initializationOptions: { debounceMs: 10, stdlibPath: STDLIB, ...initializationOptions },
  });
  await conn.sendNotification('initialized', {});
  const versions = new Map<string, number>();
  const uri = (path: string): string => pathToFileURL(join(root, path)).href;
  const client: Client = {
    root,
    conn,
    proc,
    uri,
    diagnostics,
    waitForDiagnostics(path, pred = () => true, timeoutMs = 10_000) {
      const u = uri(path);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no matching diagnostics for ${path} within ${timeoutMs} ms; last: ${JSON.stringify(diagnostics.get(u))}\nserver stderr: ${stderr}`)),
          timeoutMs,
        );
        const check = (): void => {
          const d = diagnostics.get(u);
          if (d && pred(d)) {
            clearTimeout(timer);
            resolve(d);
          } else listeners.push(check);
        };
        check();
      });
    },
    open(path, text) {
      versions.set(path, 1);
      void conn.sendNotification('textDocument/didOpen', { textDocument: { uri: uri(path), languageId: 'mcl', version: 1, text } });
    },
    change(path, text) {
      const v = (versions.get(path) ?? 1) + 1;
      versions.set(path, v);
      void conn.sendNotification('textDocument/didChange', { textDocument: { uri: uri(path), version: v }, contentChanges: [{ text }] });
    },
    stderr: () => stderr,
    async close() {
      try {
        await Promise.race([conn.sendRequest('shutdown'), new Promise((r) => setTimeout(r, 2000))]);
        await conn.sendNotification('exit');
      } catch {
        // The server may already be gone.
      }
      await new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        const t = setTimeout(() => {
          proc.kill('SIGKILL');
          resolve();
        }, 2000);
        proc.on('exit', () => {
          clearTimeout(t);
          resolve();
        });
      });
      conn.dispose();
      rmSync(root, { recursive: true, force: true });
    },
  };
  return client;
}
