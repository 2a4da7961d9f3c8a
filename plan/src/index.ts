export * from './types';
export * from './canonical';
export * from './validate';
export * from './diff';
