// The language service: wires the LSP connection to the workspace model, the
// build scheduler and the feature modules. `server.ts` creates a stdio
// connection and calls `startServer`; tests can drive the same code.

import { dirname, join, parse as parsePath, relative, isAbsolute } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  DidChangeWatchedFilesNotification,
  FileChangeType,
  ResponseError,
  ErrorCodes,
  LSPErrorCodes,
  TextDocumentSyncKind,
  DiagnosticSeverity,
  MessageType,
  ShowMessageNotification,
  TextDocuments,
  type CancellationToken,
  type Diagnostic,
  type Connection,
  type InitializeParams,
  type InitializeResult,
  type FormattingOptions,
  type Range,
} from 'vscode-languageserver';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { LineIndex } from '@mcl/language';
import { prettyJson } from '@mcl/plan';
import { Analyzer, RequestCancelled, type Snapshot } from './analysis';
import { toLspDiagnostic } from './convert';
import { codeActions } from './features/code-actions';
import { sourceActions, SOURCE_ACTION_KINDS } from './features/source-actions';
import { documentLinks } from './features/document-links';
import { codeLenses } from './features/code-lens';
import { RENAME_FILTERS, willRenameFiles } from './features/file-rename';
import { liveSettings } from './features/settings';
import { signatureHelp, SIGNATURE_RETRIGGERS, SIGNATURE_TRIGGERS } from './features/signature-help';
import { completion, COMPLETION_TRIGGERS } from './features/completion';
import { definition } from './features/definition';
import { formatDocument } from './features/formatting';
import { documentSymbols, flatDocumentSymbols, workspaceSymbols } from './features/symbols';
import { foldingRanges } from './features/folding';
import { hover } from './features/hover';
import { inlayHints } from './features/inlay-hints';
import { documentHighlights, prepareRename, references, rename } from './features/references';
import { semanticTokens, SEMANTIC_LEGEND } from './features/semantic-tokens';
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
      capabilities: {
        textDocumentSync: { openClose: true, change: TextDocumentSyncKind.Incremental, save: { includeText: false } },
        hoverProvider: true,
        definitionProvider: true,
        referencesProvider: true,
        documentHighlightProvider: true,
        renameProvider: { prepareProvider: true },
        completionProvider: { triggerCharacters: COMPLETION_TRIGGERS, resolveProvider: false },
        signatureHelpProvider: { triggerCharacters: SIGNATURE_TRIGGERS, retriggerCharacters: SIGNATURE_RETRIGGERS },
        documentSymbolProvider: true,
        workspaceSymbolProvider: true,
        foldingRangeProvider: true,
        documentLinkProvider: { resolveProvider: false },
        codeLensProvider: { resolveProvider: false },
        documentFormattingProvider: true,
        documentRangeFormattingProvider: true,
        codeActionProvider: { codeActionKinds: ['quickfix', ...SOURCE_ACTION_KINDS] },
        inlayHintProvider: true,
        semanticTokensProvider: { legend: SEMANTIC_LEGEND, full: true, range: false },
        workspace: { workspaceFolders: { supported: true, changeNotifications: true }, fileOperations: { willRename: RENAME_FILTERS } },
      },
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

  /**
   * Runs a request that needs a checked snapshot; a cancelled request answers
   * with the protocol's RequestCancelled error instead of stale results.
   */
  async function withChecked<T>(token: CancellationToken, run: (s: Snapshot, c: ServerContext) => T): Promise<T> {
    const c = need();
    try {
      const s = await c.analyzer.checked(token);
      if (token.isCancellationRequested) throw new RequestCancelled();
      return run(s, c);
    } catch (e) {
      if (e instanceof RequestCancelled) throw new ResponseError(LSPErrorCodes.RequestCancelled, 'cancelled');
      throw e;
    }
  }

  function fileOf(uri: string): string | undefined {
    return need().paths.fromUri(uri);
  }

  connection.onHover((p, token) => {
    const file = fileOf(p.textDocument.uri);
    return file ? withChecked(token, (s, c) => hover(s, c, file, p.position)) : null;
  });
  connection.onDefinition((p, token) => {
    const file = fileOf(p.textDocument.uri);
    return file ? withChecked(token, (s, c) => definition(s, c, file, p.position)) : null;
  });
  connection.onReferences((p, token) => {
    const file = fileOf(p.textDocument.uri);
    return file ? withChecked(token, (s, c) => references(s, c, file, p.position, p.context.includeDeclaration)) : null;
  });
  connection.onDocumentHighlight((p, token) => {
    const file = fileOf(p.textDocument.uri);
    return file ? withChecked(token, (s, c) => documentHighlights(s, c, file, p.position)) : null;
  });
  connection.onPrepareRename((p, token) => {
    const file = fileOf(p.textDocument.uri);
    return file ? withChecked(token, (s, c) => prepareRename(s, c, file, p.position)) : null;
  });
  connection.onRenameRequest((p, token) => {
    const file = fileOf(p.textDocument.uri);
    return file ? withChecked(token, (s, c) => rename(s, c, file, p.position, p.newName)) : null;
  });
  connection.onCompletion((p, token) => {
    const file = fileOf(p.textDocument.uri);
    return file ? withChecked(token, (s, c) => completion(s, c, file, p.position)) : null;
  });
  connection.onSignatureHelp((p, token) => {
    const file = fileOf(p.textDocument.uri);
    return file ? withChecked(token, (s, c) => signatureHelp(s, c, file, p.position)) : null;
  });
  connection.onDocumentLinks((p, token) => {
    const file = fileOf(p.textDocument.uri);
    return file ? withChecked(token, (s, c) => documentLinks(s, c, file)) : null;
  });
  connection.onCodeLens((p, token) => {
    const file = fileOf(p.textDocument.uri);
    return file ? withChecked(token, (s, c) => codeLenses(s, c, file)) : null;
  });
  connection.workspace.onWillRenameFiles((p, token) => withChecked(token, (s, c) => willRenameFiles(s, c, p, (m) => connection.console.error(m))));
  connection.onDocumentSymbol((p) => {
    const c = need();
    const file = fileOf(p.textDocument.uri);
    const doc = file ? c.analyzer.parsedDocument(file) : undefined;
    if (!doc) return null;
    const symbols = documentSymbols(doc);
    return c.client.hierarchicalSymbols ? symbols : flatDocumentSymbols(symbols, p.textDocument.uri);
  });
  connection.onWorkspaceSymbol((p, token) => withChecked(token, (s, c) => workspaceSymbols(s, c, p.query)));
  connection.onFoldingRanges((p) => {
    const c = need();
    const file = fileOf(p.textDocument.uri);
    const doc = file ? c.analyzer.parsedDocument(file) : undefined;
    return doc ? foldingRanges(doc) : null;
  });
  async function format(uri: string, options: FormattingOptions, range?: Range) {
    const c = need();
    const file = fileOf(uri);
    const doc = file ? c.analyzer.parsedDocument(file) : undefined;
    if (!file || !doc) return null;
    if (c.workspace.tooLargeSize(file) !== undefined) return null;
    // A file with syntax errors is not formatted; its diagnostics already say where.
    if (doc.diagnostics.some((d) => d.severity === 'error')) return null;
    try {
      return await formatDocument(doc, c.paths.toFsPath(file), options, range);
    } catch (e) {
      // The file parses, so this is a bug in the formatter: say so where the user sees it, not only in the log.
      const message = `mcl: the formatter failed on ${file} (a bug, please report it): ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
      connection.console.error(message);
      throw new ResponseError(ErrorCodes.InternalError, message);
    }
  }
  connection.onDocumentFormatting((p) => format(p.textDocument.uri, p.options));
  connection.onDocumentRangeFormatting((p) => format(p.textDocument.uri, p.options, p.range));
  connection.onCodeAction((p, token) => {
    const file = fileOf(p.textDocument.uri);
    return file ? withChecked(token, (s, c) => [...codeActions(s, c, file, p), ...sourceActions(s, c, file, p)]) : null;
  });
  connection.languages.inlayHint.on((p, token) => {
    const file = fileOf(p.textDocument.uri);
    return file ? withChecked(token, (s, c) => inlayHints(s, c, file, p.range)) : null;
  });
  connection.languages.semanticTokens.on((p, token) => {
    const file = fileOf(p.textDocument.uri);
    if (!file) return { data: [] };
    return withChecked(token, (s, c) => semanticTokens(s, c, file));
  });

  // Custom requests the VS Code extension and the benchmark use.
  connection.onRequest('mcl/stats', () => {
    const c = need();
    return { ...c.analyzer.stats, memory: process.memoryUsage() };
  });

  // The plan of one file (its module and what it imports), for "MCL: Show Plan".
  connection.onRequest('mcl/plan', (p: { uri: string }) => {
    const c = need();
    const file = c.paths.fromUri(p.uri);
    if (!file || file.startsWith('std:')) return { errors: [{ message: 'not a workspace .mcl file', file: p.uri, line: 1 }] };
    // The file's project, compiled from the project's root with the file as
    // the only entry, as `mclc plan FILE` would from that root.
    const project = c.analyzer.projectOf(file) ?? c.analyzer.projects().find((p) => p.files.includes(file)) ?? { root: '', files: [file] };
    const { result } = c.analyzer.compileProject(project, { emitPlan: true, entries: [file] });
    const diagnostics = result.diagnostics;
    const hasErrors = diagnostics.some((d) => d.severity === 'error');
    const errors = diagnostics
      .filter((d) => d.severity === 'error')
      .map((d) => {
        const text = result.program.texts.get(d.file);
        const line = text === undefined ? 1 : new LineIndex(text).position(d.span.start).line;
        return { message: d.message, file: d.file, line, code: d.code };
      });
    return { plan: result.plan && !hasErrors ? prettyJson(result.plan) : undefined, errors };
  });

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
