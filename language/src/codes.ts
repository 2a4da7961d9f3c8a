// The registry of syntax diagnostic codes. Codes are stable: a code, once
// published, keeps its meaning forever; retired codes are never reused.

import type { DiagnosticInfo } from './diagnostics';

function info(code: string, title: string, severity: DiagnosticInfo['severity'] = 'error'): DiagnosticInfo {
  return { code, stage: 'syntax', severity, title };
}

/** Every diagnostic the lexer and parser can report, by symbolic name. */
export const SyntaxCodes = {
  InvalidCharacter: info('MCL0101', 'Invalid character'),
  UnterminatedString: info('MCL0102', 'Unterminated string literal'),
  UnterminatedComment: info('MCL0103', 'Unterminated block comment'),
  InvalidEscape: info('MCL0104', 'Invalid escape sequence in a string'),
  UnknownUnit: info('MCL0105', 'Unknown unit on a number'),
  NumberOutOfRange: info('MCL0106', 'Number out of range'),
  MalformedNumber: info('MCL0107', 'Malformed number'),
  ExpectedToken: info('MCL0108', 'Expected something that is missing'),
  UnexpectedToken: info('MCL0109', 'Unexpected input'),
  NestingTooDeep: info('MCL0110', 'Nesting too deep'),
  InvalidConstraint: info('MCL0111', 'Invalid type constraint'),
  ImportAfterDeclaration: info('MCL0112', 'Import after a declaration', 'warning'),
  WrongLiteralKind: info('MCL0113', 'Value of the wrong kind'),
  DuplicateOrder: info('MCL0114', 'More than one `order` clause'),
  ResponseOnOneWay: info('MCL0115', 'Response type on a one-way operation'),
  MissingImportItems: info('MCL0116', 'Import without items'),
  MissingComma: info('MCL0117', 'Missing comma'),
  TooManyErrors: info('MCL0118', 'Too many syntax errors', 'info'),
} as const satisfies Record<string, DiagnosticInfo>;

export type SyntaxCodeName = keyof typeof SyntaxCodes;

/** The registry as a list, for documentation and SARIF rule tables. */
export const syntaxDiagnosticInfos: readonly DiagnosticInfo[] = Object.values(SyntaxCodes);
