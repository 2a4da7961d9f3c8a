// The version of mclc, written into every plan and printed by `mclc --version`.
import pkg from '../package.json';

export const MCLC_VERSION: string = (pkg as { version: string }).version;
