export * from './types';
export * from './canonical';
export * from './validate';
export * from './diff';
export * from './digest';
export { sha256Hex } from './sha256';
export * from './stale';
export * from './host';
export * from './int64';
