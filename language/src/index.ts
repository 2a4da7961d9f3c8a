export * from './ast';
export * from './diagnostics';
export * from './text';
