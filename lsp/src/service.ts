// The language service: wires the LSP connection to the workspace model, the
// build scheduler and the table of request handlers (handlers.ts): this file
// serves initialization, document sync, watched files, workspace folders and
// publishing diagnostics. `server.ts` creates a stdio
// connection and calls `startServer`; tests can drive the same code.

import { dirname, join, parse as parsePath, relative, isAbsolute } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  DidChangeWatchedFilesNotification,
  FileChangeType,
  ResponseError,
  TextDocumentSyncKind,
  DiagnosticSeverity,
  MessageType,
  ShowMessageNotification,
  TextDocuments,
  type Diagnostic,
  type Connection,
  type InitializeParams,
  type InitializeResult,
} from 'vscode-languageserver';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { Analyzer, type Snapshot } from './analysis';
import { toLspDiagnostic } from './convert';
import { liveSettings } from './features/settings';
import { HANDLERS } from './handlers';
import { capabilitiesOf } from './requests';
import { createBaseHost } from './host';
import { findStdlibDir, PathMapper } from './paths';
import { clientFeatures, type ClientFeatures } from './client';
import { MAX_SOURCE_SIZE, Workspace } from './workspace';

/** Settings a client may pass in `initializationOptions`. */
export interface ServerOptions {
  /** Folder of the standard library (`prelude.mcl`, `http.mcl`, ...). */
  stdlibPath?: string;
  /** Quiet period after an edit before the workspace is rebuilt, in ms. */
  debounceMs?: number;
  /** Also assemble the plan on every edit (policies are checked either way; this reports problems found only while assembling it). */
  emitPlan?: boolean;
}

export interface ServerContext {
  workspace: Workspace;
  analyzer: Analyzer;
  paths: PathMapper;
  /** What the client can take (snippets, Markdown, ...). */
  client: ClientFeatures;
}

/** The server's version, in `initialize`'s serverInfo and `--version`. */
export const SERVER_VERSION = '0.1.0';

/**
 * Serves one connection. `bundleDir` is the folder of the running server, used
 * to find the standard library shipped beside it.
 */
export function startServer(connection: Connection, bundleDir: string): void {
  const documents = new TextDocuments(TextDocument);
  let ctx: ServerContext | undefined;
  /** Files that currently show diagnostics in the client, with what was sent, so stale ones can be cleared. */
  let published = new Map<string, string>();

  connection.onInitialize((params: InitializeParams): InitializeResult => {
    const options = (params.initializationOptions ?? {}) as ServerOptions;
    const client = clientFeatures(params.capabilities);
    // Every workspace folder is scanned; file names are relative to the folders' common ancestor.
    const folderUris = params.workspaceFolders?.length ? params.workspaceFolders.map((f) => f.uri) : params.rootUri ? [params.rootUri] : [];
    const folders: string[] = [];
    for (const uri of folderUris) {
      try {
        folders.push(fileURLToPath(uri));
      } catch {
        // Only `file:` workspaces can be read from disk.
        connection.console.error(`mcl: the workspace folder ${uri} is not a local folder; it is not analysed`);
      }
    }
    if (folders.length === 0) folders.push(params.rootPath ?? process.cwd());
    const root = commonAncestor(folders);
    const stdlib = findStdlibDir(options.stdlibPath, bundleDir);
    if (!stdlib) {
      connection.console.error(
        'mcl: the standard library folder was not found; set `mcl.stdlibPath` or MCL_STDLIB. Imports of std modules will fail.',
      );
    }
    const paths = new PathMapper(root, stdlib ?? `${root}/.mcl-missing-stdlib`);
    const workspace = new Workspace(paths, createBaseHost(paths));
    workspace.folders = folders;
    // Limits hit while starting are shown once the client is ready for messages (after `initialized`).
    const pendingWarnings: string[] = [];
    let ready = false;
    const warn = (message: string): void => {
      connection.console.error(`mcl: ${message}`);
      if (ready) void connection.sendNotification(ShowMessageNotification.type, { type: MessageType.Warning, message: `mcl: ${message}` });
      else pendingWarnings.push(message);
    };
    workspace.onLimit = warn;
    workspace.scan();
    const analyzer = new Analyzer(workspace, {
      debounceMs: options.debounceMs ?? 50,
      emitPlan: options.emitPlan ?? false,
      log: (m) => connection.console.error(m),
      onSnapshot: (s) => publishDiagnostics(s),
    });
    ctx = { workspace, analyzer, paths, client };
    const settings = liveSettings(connection, ctx, params.capabilities, {
      initial: { debounceMs: options.debounceMs ?? 50, emitPlan: options.emitPlan ?? false, stdlibDir: paths.stdlibDir },
      warn,
    });
    const watchDynamic = params.capabilities.workspace?.didChangeWatchedFiles?.dynamicRegistration === true;
    workspace.cacheDisk = watchDynamic;

    connection.onInitialized(() => {
      ready = true;
      for (const m of pendingWarnings.splice(0)) warn(m);
      settings.start();
      if (watchDynamic) {
        void connection.client.register(DidChangeWatchedFilesNotification.type, {
          watchers: [{ globPattern: '**/*.mcl' }],
        });
      }
      if (client.workspaceFolders) {
        connection.workspace.onDidChangeWorkspaceFolders((e) => {
          const c = need();
          const added: string[] = [];
          for (const f of e.added) {
            try {
              added.push(fileURLToPath(f.uri));
            } catch {
              connection.console.error(`mcl: the workspace folder ${f.uri} is not a local folder; it is not analysed`);
            }
          }
          const removed = new Set(e.removed.map((f) => f.uri));
          const kept = c.workspace.folders.filter((f) => !removed.has(pathToFileURL(f).href));
          const outside = added.filter((f) => c.paths.fromUri(pathToFileURL(join(f, 'x.mcl')).href) === undefined);
          if (outside.length > 0) {
            // File names are relative to the common ancestor chosen at start; a folder outside it needs a new server.
            c.workspace.onLimit(`${outside.join(', ')} is outside ${c.paths.root}, where the server started; restart the mcl language server to analyse it.`);
          }
          c.workspace.folders = [...kept, ...added.filter((f) => !outside.includes(f))];
          c.workspace.scan();
          c.analyzer.invalidate();
        });
      }
      // The first build reports problems in every workspace file, open or not.
      analyzer.invalidate();
    });

    return {
      // What the requests need is announced by their entries in the table; document sync and workspace folders are served here.
      capabilities: capabilitiesOf(HANDLERS, {
        textDocumentSync: { openClose: true, change: TextDocumentSyncKind.Incremental, save: { includeText: false } },
        workspace: { workspaceFolders: { supported: true, changeNotifications: true } },
      }),
      serverInfo: { name: 'mcl-lsp', version: SERVER_VERSION },
    };
  });

  function need(): ServerContext {
    if (!ctx) throw new ResponseError(-32002, 'the server is not initialized');
    return ctx;
  }

  function publishDiagnostics(s: Snapshot): void {
    const c = need();
    const byFile = new Map<string, Diagnostic[]>();
    for (const d of s.result.diagnostics) {
      const lsp = toLspDiagnostic(d, (f) => s.lines(f) ?? linesFromWorkspace(c, f), c.paths, c.client);
      if (!lsp) continue;
      const list = byFile.get(d.file);
      if (list) list.push(lsp);
      else byFile.set(d.file, [lsp]);
    }
    // A file over the size limit was analysed as empty: say so on the file itself.
    for (const [file, size] of c.workspace.tooLargeFiles()) {
      const warning: Diagnostic = {
        range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } },
        severity: DiagnosticSeverity.Warning,
        source: 'mcl',
        message: `This file is ${(size / 2 ** 20).toFixed(1)} MiB, over the ${MAX_SOURCE_SIZE / 2 ** 20} MiB the language server analyses: it is not checked, indexed or formatted here. \`mclc validate\` checks it.`,
      };
      byFile.set(file, [warning, ...(byFile.get(file) ?? [])]);
    }
    // Every open document hears about each build, even when nothing changed,
    // so the client knows its diagnostics are current; other files are sent
    // only when their diagnostics changed (a file that was showing problems
    // and has none left is sent an empty list).
    const open = new Set(c.workspace.openFiles());
    const now = new Map<string, string>();
    for (const file of new Set([...byFile.keys(), ...published.keys(), ...open])) {
      const diagnostics = byFile.get(file) ?? [];
      const key = JSON.stringify(diagnostics);
      if (diagnostics.length > 0) now.set(file, key);
      if (open.has(file) || published.get(file) !== key) {
        // The version of the open document these diagnostics were computed from (when the text is still that one).
        const doc = c.workspace.openDocument(file);
        const version = c.client.diagnosticVersion && doc && doc.getText() === s.text(file) ? doc.version : undefined;
        void connection.sendDiagnostics({ uri: c.paths.toUri(file), diagnostics, ...(version !== undefined ? { version } : {}) });
      }
    }
    published = now;
  }

  // Document sync: the TextDocuments manager applies incremental edits; the
  // workspace sees the new text at once and a build is scheduled. (Opening a
  // document also fires a content change, which is all that is needed.)
  documents.onDidChangeContent((e) => track(e.document));
  // A client that does not report file changes still saves files: the scan
  // is then repeated on save, so files created outside the editor are found.
  documents.onDidSave(() => {
    const c = need();
    if (c.workspace.cacheDisk) return;
    c.workspace.scan();
    c.analyzer.invalidate();
  });
  documents.onDidClose((e) => {
    const c = need();
    const file = c.paths.fromUri(e.document.uri);
    if (!file) return;
    c.workspace.close(file);
    c.analyzer.forget(file);
    c.analyzer.invalidate();
  });
  function track(doc: TextDocument): void {
    const c = need();
    const file = c.paths.fromUri(doc.uri);
    if (!file) return;
    c.workspace.setOpen(file, doc);
    c.analyzer.invalidate();
  }

  connection.onDidChangeWatchedFiles((params) => {
    const c = need();
    for (const change of params.changes) {
      const file = c.paths.fromUri(change.uri);
      if (!file) continue;
      const kind = change.type === FileChangeType.Created ? 'created' : change.type === FileChangeType.Deleted ? 'deleted' : 'changed';
      c.workspace.fileChanged(file, kind);
    }
    c.analyzer.invalidate();
  });

  // Every request, from the table of handlers (handlers.ts).
  for (const h of HANDLERS) h.register(connection, need, (m) => connection.console.error(m));

  connection.onShutdown(() => ctx?.analyzer.dispose());
  documents.listen(connection);
}

function linesFromWorkspace(c: ServerContext, file: string) {
  return c.analyzer.parsedDocument(file)?.lines;
}


/** The deepest folder holding every one of `folders`. */
function commonAncestor(folders: string[]): string {
  let root = folders[0];
  for (const f of folders.slice(1)) {
    while (true) {
      const rel = relative(root, f);
      if (!rel.startsWith('..') && !isAbsolute(rel)) break;
      const up = dirname(root);
      if (up === root) return parsePath(root).root;
      root = up;
    }
  }
  return root;
}
