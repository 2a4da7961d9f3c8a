// Command-line options of the broker's benchmarks (broker-bench.ts, link-bench.ts): `--name value`.

const args = process.argv.slice(2);

/** The number after `--name`, or `def` when the option is absent. */
export function numberOption(name: string, def: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
}

/** The text after `--name`, or null when the option is absent. */
export function textOption(name: string): string | null {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : null;
}
