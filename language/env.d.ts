// The host globals the language uses beyond ECMAScript, which every
// JavaScript host it runs in (Node, browsers, editors) provides. Only the
// package's own tsconfig (checked with no ambient Node types) includes this
// file; the root tsconfig gets the same names from @types/node.

interface ErrorConstructor {
  /** V8's bound on captured stack frames; other engines ignore it. */
  stackTraceLimit: number;
}
