// Lexical tokens for semantic highlighting: which words are keywords here.
//
// Reserved words are always keywords. Contextual keywords (`memory`, `rate`,
// `allow`, ...) are keywords only where they are not names; the semantic
// token pass gives names priority, so a word is reported as a keyword only
// when no declaration or reference covers it.

import { scan } from './features/completion';
import { RESERVED_WORDS } from './features/references';

const CONTEXTUAL_KEYWORDS = new Set([
  'call', 'send', 'notify', 'order', 'memory', 'vcpus', 'label', 'declassifies', 'replicas', 'per', 'session',
  'pool', 'max', 'min', 'single', 'restart', 'always', 'on-failure', 'never', 'program', 'script', 'exec', 'file',
  'from', 'env', 'on', 'tcp', 'optional', 'sensitive', 'rate', 'burst', 'max_message', 'timeout', 'allow',
  'max_inflight', 'only', 'through', 'no', 'path', 'flow', 'exposed', 'budget', 'to', 'as', 'pattern',
]);

export interface LexicalToken {
  kind: 'keyword' | 'other';
  start: number;
  end: number;
}

export function lexicalTokens(text: string): LexicalToken[] {
  return scan(text, text.length)
    .filter((t) => t.kind === 'ident')
    .map((t) => ({ kind: RESERVED_WORDS.has(t.text) || CONTEXTUAL_KEYWORDS.has(t.text) ? 'keyword' : 'other', start: t.start, end: t.end }));
}
