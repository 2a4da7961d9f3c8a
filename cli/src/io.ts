// Terminal output: where text goes and whether it is coloured.
//
// Colour is used only when the stream is a TTY, NO_COLOR is not set, and we
// are not running in automation (MCL_IN_AUTOMATION or CI); FORCE_COLOR turns
// it on regardless (for tests and for pagers that understand ANSI).

export interface Styler {
  enabled: boolean;
  red(s: string): string;
  yellow(s: string): string;
  green(s: string): string;
  blue(s: string): string;
  cyan(s: string): string;
  bold(s: string): string;
  dim(s: string): string;
}

export function inAutomation(env: NodeJS.ProcessEnv = process.env): boolean {
  const set = (v: string | undefined) => v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
  return set(env.MCL_IN_AUTOMATION) || set(env.CI);
}

export function colorEnabled(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '' && env.FORCE_COLOR !== '0') return true;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (inAutomation(env)) return false;
  return stream.isTTY === true;
}

export function styler(enabled: boolean): Styler {
  const wrap = (open: number, close: number) => (s: string) => (enabled && s ? `\x1b[${open}m${s}\x1b[${close}m` : s);
  return {
    enabled,
    red: wrap(31, 39),
    yellow: wrap(33, 39),
    green: wrap(32, 39),
    blue: wrap(34, 39),
    cyan: wrap(36, 39),
    bold: wrap(1, 22),
    dim: wrap(2, 22),
  };
}

export const plainStyle = styler(false);

/** Human-readable byte counts in binary units, as the language writes sizes. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const s = i === 0 ? String(v) : Number.isInteger(v) ? String(v) : v.toFixed(1);
  return `${s}${units[i]}`;
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
