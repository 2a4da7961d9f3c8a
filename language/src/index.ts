export * from './ast';
export * from './diagnostics';
export * from './text';
export { parse, type ParseResult, MAX_SYNTAX_DIAGNOSTICS } from './parse';
export { SyntaxCodes, syntaxDiagnosticInfos, type SyntaxCodeName } from './codes';
