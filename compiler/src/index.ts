// @mcl/compiler: compile() and its contract types. This entry point is pure
// (no IO, no Node built-ins) so it can run in the editor; the file-system host
// lives in `@mcl/compiler/node-host` (src/node-host.ts).

export * from './api';
export { compile, IncrementalCompiler } from './compile';
export { CAPABILITIES, type BackendCapabilities } from './target/capabilities';
export { BACKEND_NAMES, TARGET_PROPERTIES } from './compose/components';
// The plan's canonical JSON and digests are @mcl/plan's; re-exported for the compiler's users.
export { canonicalJson, planDigest, sha256Hex } from '@mcl/plan';
export { compileOrder } from './types/dfa';
// How module paths and program paths name files, for tools that link to them (the language server's document links).
export { moduleFile, modulePathOfFile } from './resolve/load';
export { programFilePath } from './plan/program';
export { planChecks, recheckPlan } from './plan/policies';
export { checkPolicies, type PolicyInput, type PolicyResult } from './policy/index';
// The per-clone memory estimate placement uses, for tools that check room on a target at run time (mclc migrate).
export { cloneCount, privateEstimate } from './policy/resources';
