export * from './ast';
export * from './diagnostics';
export * from './text';
export { parse, type ParseResult, MAX_SYNTAX_DIAGNOSTICS } from './parse';
export { Codes, codeInfo, diagnosticInfos, syntaxDiagnosticInfos, type CodeName } from './codes';
export { tokenize, type LexicalToken } from './lexer';
export { walk, nodeAt, childrenOf, forEachChild, type Visitor } from './visit';
export { RESERVED_WORDS, CONTEXTUAL_KEYWORDS, type TokenKind } from './tokens';
export { MAX_PORT_ARRAY } from './parser';
