// The host globals the compiler uses beyond ECMAScript, which every
// JavaScript host it runs in (Node, browsers, editors) provides. Only the
// package's own tsconfig (checked with no ambient Node types) includes this
// file; the root tsconfig gets the same names from @types/node.

declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
