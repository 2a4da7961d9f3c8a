// "Did you mean ...?" suggestions by edit distance.

/** Damerau-Levenshtein (optimal string alignment) distance, bounded: returns max+1 as soon as it is exceeded. */
export function editDistance(a: string, b: string, max = Infinity): number {
  if (a === b) return 0;
  if (Math.abs(a.length - b.length) > max) return max + 1;
  const al = a.length;
  const bl = b.length;
  let prev2 = new Array<number>(bl + 1).fill(0);
  let prev = new Array<number>(bl + 1);
  let cur = new Array<number>(bl + 1);
  for (let j = 0; j <= bl; j++) prev[j] = j;
  for (let i = 1; i <= al; i++) {
    cur[0] = i;
    let rowMin = cur[0];
    for (let j = 1; j <= bl; j++) {
      const cost = a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1;
      let v = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, prev2[j - 2] + 1);
      cur[j] = v;
      if (v < rowMin) rowMin = v;
    }
    if (rowMin > max) return max + 1;
    const t = prev2;
    prev2 = prev;
    prev = cur;
    cur = t;
  }
  return prev[bl];
}

/**
 * The closest candidates to `name` (case-insensitive distance at most a third
 * of the name's length, at least 1), best first, ties broken alphabetically.
 */
export function suggest(name: string, candidates: Iterable<string>, limit = 3): string[] {
  const lower = name.toLowerCase();
  const max = Math.max(1, Math.floor(name.length / 3));
  const scored: [number, string][] = [];
  const seen = new Set<string>();
  for (const c of candidates) {
    if (c === name || seen.has(c) || c === '') continue;
    seen.add(c);
    const d = editDistance(lower, c.toLowerCase(), max);
    if (d <= max) scored.push([d, c]);
  }
  scored.sort((x, y) => x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0));
  return scored.slice(0, limit).map((s) => s[1]);
}

/** `did you mean `a`?` / `did you mean `a` or `b`?` or undefined. */
export function didYouMean(name: string, candidates: Iterable<string>): string | undefined {
  const s = suggest(name, candidates);
  if (s.length === 0) return undefined;
  if (s.length === 1) return `did you mean \`${s[0]}\`?`;
  return `did you mean ${s.slice(0, -1).map((x) => `\`${x}\``).join(', ')} or \`${s[s.length - 1]}\`?`;
}
