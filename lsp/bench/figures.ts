// What the language server's benchmarks share in how they report figures.

/**
 * The edits after which the benchmarks report the first ones and the rest
 * apart: a fresh server runs the compiler's code unoptimised at first, so the
 * slowest edits of a short run are nearly all among the first ones.
 */
export const WARM_UP = 40;

/** The `p`th percentile of `xs` (the nearest rank below; 0 for no figures). */
export function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}
