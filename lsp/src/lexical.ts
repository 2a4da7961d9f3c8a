// Lexical classes for semantic highlighting, from @mcl/language's tokenizer.
//
// Reserved words are always keywords. Contextual keywords (`memory`, `rate`,
// `allow`, ...) are keywords only where they are not names; the semantic
// token pass gives resolved names priority, so such a word is reported as a
// keyword only when no declaration or reference covers it.

import { tokenize } from '@mcl/language';

export type LexicalClass = 'keyword' | 'contextualKeyword' | 'string' | 'number' | 'operator' | 'comment' | 'docComment' | 'other';

export interface LexicalToken {
  kind: LexicalClass;
  start: number;
  end: number;
}

export function lexicalTokens(text: string): LexicalToken[] {
  return tokenize(text).map((t) => {
    let kind: LexicalClass;
    switch (t.kind) {
      case 'keyword':
      case 'bool':
        kind = 'keyword';
        break;
      case 'contextualKeyword':
        kind = 'contextualKeyword';
        break;
      case 'string':
        kind = 'string';
        break;
      case 'int':
      case 'float':
      case 'size':
      case 'duration':
      case 'rate':
        kind = 'number';
        break;
      case 'operator':
        kind = 'operator';
        break;
      case 'comment':
      case 'docComment':
        kind = t.kind;
        break;
      default:
        kind = 'other';
    }
    return { kind, start: t.span.start, end: t.span.end };
  });
}
