// Every request the language server answers, one entry each: the request
// type, the capability `initialize` announces for it, the answer for a
// document the server does not analyse, and the feature that answers it.
// What every request needs (initialization, the document lookup, the size
// limit, cancellation, logging failures) is in requests.ts, written once.
// Adding a request is adding an entry.

import {
  CodeActionRequest,
  CodeLensRequest,
  CompletionRequest,
  DefinitionRequest,
  DocumentFormattingRequest,
  DocumentHighlightRequest,
  DocumentLinkRequest,
  DocumentRangeFormattingRequest,
  DocumentSymbolRequest,
  FoldingRangeRequest,
  HoverRequest,
  InlayHintRequest,
  PrepareRenameRequest,
  ReferencesRequest,
  RenameRequest,
  RequestType,
  SemanticTokensRequest,
  SignatureHelpRequest,
  WillRenameFilesRequest,
  WorkspaceSymbolRequest,
  type FormattingOptions,
  type Range,
} from 'vscode-languageserver';
import { LineIndex } from '@mcl/language';
import { prettyJson } from '@mcl/plan';
import type { ParsedDocument } from './analysis';
import { codeActions } from './features/code-actions';
import { codeLenses } from './features/code-lens';
import { documentLinks } from './features/document-links';
import { RENAME_FILTERS, willRenameFiles } from './features/file-rename';
import { signatureHelp, SIGNATURE_RETRIGGERS, SIGNATURE_TRIGGERS } from './features/signature-help';
import { sourceActions, SOURCE_ACTION_KINDS } from './features/source-actions';
import { completion, COMPLETION_TRIGGERS } from './features/completion';
import { definition } from './features/definition';
import { foldingRanges } from './features/folding';
import { formatDocument } from './features/formatting';
import { hover } from './features/hover';
import { inlayHints } from './features/inlay-hints';
import { documentHighlights, prepareRename, references, rename } from './features/references';
import { semanticTokens, SEMANTIC_LEGEND } from './features/semantic-tokens';
import { documentSymbols, flatDocumentSymbols, workspaceSymbols } from './features/symbols';
import { documentRequest, workspaceRequest, type DocumentContext, type Handler } from './requests';
import type { ServerContext } from './service';

export const HANDLERS: readonly Handler[] = [
  documentRequest(HoverRequest.type, { hoverProvider: true }, null, async (p, c) => hover(await c.checked(), c.server, c.file, p.position)),
  documentRequest(DefinitionRequest.type, { definitionProvider: true }, null, async (p, c) => definition(await c.checked(), c.server, c.file, p.position)),
  documentRequest(ReferencesRequest.type, { referencesProvider: true }, null, async (p, c) => references(await c.checked(), c.server, c.file, p.position, p.context.includeDeclaration)),
  documentRequest(DocumentHighlightRequest.type, { documentHighlightProvider: true }, null, async (p, c) => documentHighlights(await c.checked(), c.server, c.file, p.position)),
  documentRequest(PrepareRenameRequest.type, {}, null, async (p, c) => prepareRename(await c.checked(), c.server, c.file, p.position)),
  documentRequest(RenameRequest.type, { renameProvider: { prepareProvider: true } }, null, async (p, c) => rename(await c.checked(), c.server, c.file, p.position, p.newName)),
  documentRequest(CompletionRequest.type, { completionProvider: { triggerCharacters: COMPLETION_TRIGGERS, resolveProvider: false } }, null, async (p, c) => completion(await c.checked(), c.server, c.file, p.position)),
  documentRequest(SignatureHelpRequest.type, { signatureHelpProvider: { triggerCharacters: SIGNATURE_TRIGGERS, retriggerCharacters: SIGNATURE_RETRIGGERS } }, null, async (p, c) => signatureHelp(await c.checked(), c.server, c.file, p.position)),
  documentRequest(DocumentLinkRequest.type, { documentLinkProvider: { resolveProvider: false } }, null, async (_p, c) => documentLinks(await c.checked(), c.server, c.file)),
  documentRequest(CodeLensRequest.type, { codeLensProvider: { resolveProvider: false } }, null, async (_p, c) => codeLenses(await c.checked(), c.server, c.file)),
  documentRequest(DocumentSymbolRequest.type, { documentSymbolProvider: true }, [], (_p, c) => outline(c)),
  workspaceRequest(WorkspaceSymbolRequest.type, { workspaceSymbolProvider: true }, async (p, c) => workspaceSymbols(await c.checked(), c.server, p.query)),
  documentRequest(FoldingRangeRequest.type, { foldingRangeProvider: true }, [], (_p, c) => parsedOrNull(c, foldingRanges)),
  documentRequest(DocumentFormattingRequest.type, { documentFormattingProvider: true }, null, (p, c) => format(c, p.options)),
  documentRequest(DocumentRangeFormattingRequest.type, { documentRangeFormattingProvider: true }, null, (p, c) => format(c, p.options, p.range)),
  documentRequest(CodeActionRequest.type, { codeActionProvider: { codeActionKinds: ['quickfix', ...SOURCE_ACTION_KINDS] } }, null, async (p, c) => {
    const s = await c.checked();
    return [...codeActions(s, c.server, c.file, p), ...sourceActions(s, c.server, c.file, p)];
  }),
  documentRequest(InlayHintRequest.type, { inlayHintProvider: true }, null, async (p, c) => inlayHints(await c.checked(), c.server, c.file, p.range)),
  documentRequest(SemanticTokensRequest.type, { semanticTokensProvider: { legend: SEMANTIC_LEGEND, full: true, range: false } }, { data: [] }, async (_p, c) => semanticTokens(await c.checked(), c.server, c.file)),
  workspaceRequest(WillRenameFilesRequest.type, { workspace: { fileOperations: { willRename: RENAME_FILTERS } } }, async (p, c) => willRenameFiles(await c.checked(), c.server, p, c.log)),
  // Custom requests the VS Code extension and the benchmark use.
  workspaceRequest(new RequestType<void, unknown, void>('mcl/stats'), {}, (_p, c) => ({ ...c.server.analyzer.stats, memory: process.memoryUsage() })),
  workspaceRequest(new RequestType<{ uri: string }, PlanAnswer, void>('mcl/plan'), {}, (p, c) => planOf(c.server, p.uri)),
];

/** A feature of the parsed document, or null when there is none. */
function parsedOrNull<R>(c: DocumentContext, feature: (doc: ParsedDocument) => R): R | null {
  const doc = c.parsed();
  return doc ? feature(doc) : null;
}

/** The outline, as a tree when the client takes one. */
function outline(c: DocumentContext) {
  const doc = c.parsed();
  if (!doc) return null;
  const symbols = documentSymbols(doc);
  return c.server.client.hierarchicalSymbols ? symbols : flatDocumentSymbols(symbols, c.uri);
}

async function format(c: DocumentContext, options: FormattingOptions, range?: Range) {
  const doc = c.parsed();
  if (!doc) return null;
  // A file with syntax errors is not formatted; its diagnostics already say where.
  if (doc.diagnostics.some((d) => d.severity === 'error')) return null;
  return formatDocument(doc, c.server.paths.toFsPath(c.file), options, range);
}

interface PlanAnswer {
  plan?: string;
  errors: { message: string; file: string; line: number; code?: string }[];
}

/** The plan of one file (its module and what it imports), for "MCL: Show Plan". */
function planOf(c: ServerContext, uri: string): PlanAnswer {
  const file = c.paths.fromUri(uri);
  if (!file || file.startsWith('std:')) return { errors: [{ message: 'not a workspace .mcl file', file: uri, line: 1 }] };
  // The file's project, compiled from the project's root with the file as
  // the only entry, as `mclc plan FILE` would from that root.
  const project = c.analyzer.projectOf(file) ?? c.analyzer.projects().find((p) => p.files.includes(file)) ?? { root: '', files: [file] };
  const { result } = c.analyzer.compileProject(project, { emitPlan: true, entries: [file] });
  const hasErrors = result.diagnostics.some((d) => d.severity === 'error');
  const errors = result.diagnostics
    .filter((d) => d.severity === 'error')
    .map((d) => {
      const text = result.program.texts.get(d.file);
      const line = text === undefined ? 1 : new LineIndex(text).position(d.span.start).line;
      return { message: d.message, file: d.file, line, code: d.code };
    });
  return { plan: result.plan && !hasErrors ? prettyJson(result.plan) : undefined, errors };
}
