// What the client said it can do (`initialize`'s capabilities), read once.
// Every feature asks here before sending something only some clients
// understand: snippet completions, Markdown, hierarchical outlines, related
// locations of a diagnostic, the document version diagnostics belong to.

import { DiagnosticTag, type ClientCapabilities } from 'vscode-languageserver';

export interface ClientFeatures {
  /** Completion items may be snippets (`${1:name}` placeholders). */
  snippets: boolean;
  /** Hover contents may be Markdown. */
  markdownHover: boolean;
  /** Document symbols may be a tree (`DocumentSymbol[]`) rather than a flat `SymbolInformation[]`. */
  hierarchicalSymbols: boolean;
  /** Diagnostics may carry related locations. */
  relatedInformation: boolean;
  /** Published diagnostics may name the document version they were computed for. */
  diagnosticVersion: boolean;
  /** The client tells the server about added and removed workspace folders. */
  workspaceFolders: boolean;
  /** Diagnostics may be tagged "unnecessary" (the client greys out an unused import). */
  unnecessaryTag: boolean;
  /** Signature help may point at its parameters by offsets into the label (else by their text). */
  signatureLabelOffsets: boolean;
  /** Signature help documentation may be Markdown. */
  signatureMarkdown: boolean;
}

export function clientFeatures(caps: ClientCapabilities | undefined): ClientFeatures {
  const td = caps?.textDocument;
  const hoverFormats = td?.hover?.contentFormat;
  return {
    snippets: td?.completion?.completionItem?.snippetSupport === true,
    // The protocol's default hover format is plain text.
    markdownHover: Array.isArray(hoverFormats) && hoverFormats.includes('markdown'),
    hierarchicalSymbols: td?.documentSymbol?.hierarchicalDocumentSymbolSupport === true,
    relatedInformation: td?.publishDiagnostics?.relatedInformation === true,
    diagnosticVersion: td?.publishDiagnostics?.versionSupport === true,
    workspaceFolders: caps?.workspace?.workspaceFolders === true,
    signatureLabelOffsets: td?.signatureHelp?.signatureInformation?.parameterInformation?.labelOffsetSupport === true,
    signatureMarkdown: td?.signatureHelp?.signatureInformation?.documentationFormat?.includes('markdown') === true,
    unnecessaryTag: td?.publishDiagnostics?.tagSupport?.valueSet?.includes(DiagnosticTag.Unnecessary) === true,
  };
}

/** Markdown as plain text: code fences and inline markup dropped, the text kept. */
export function markdownToPlainText(md: string): string {
  return md
    .split('\n')
    .filter((line) => !/^\s*```/.test(line))
    .join('\n')
    .replace(/\*\*([^*]+)\*\*/g, '$1')
    .replace(/`([^`]+)`/g, '$1')
    .replace(/(^|[\s(])[*_]([^*_\n]+)[*_](?=[\s).,:;]|$)/gm, '$1$2')
    .replace(/^---$/gm, '');
}
