// Generates a large, valid `.mcl` workspace for benchmarks: `components`
// components spread over `files` files, with message types, protocols,
// systems that wire the components into chains, policies, a target and a
// root system that deploys everything. The output is deterministic for a
// given seed, and is meant to pass the whole compiler, not only the parser.

export interface GeneratedFile {
  /** Workspace-relative path, e.g. `bench/f3.mcl` (module `bench.f3`), or the guest script `bench/guest/stage.sh`. */
  path: string;
  text: string;
}

export interface GenerateOptions {
  components: number;
  files: number;
  seed?: number;
  /** Module folder under the workspace root; defaults to `bench`. */
  folder?: string;
}

export interface GeneratedWorkspace {
  files: GeneratedFile[];
  /** Path of the file holding the root system and the `deploy`. */
  main: string;
  lines: number;
  bytes: number;
}

function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x100000000;
  };
}

export function generateWorkspace(opts: GenerateOptions): GeneratedWorkspace {
  const folder = opts.folder ?? 'bench';
  const files = Math.max(1, Math.min(opts.files, opts.components));
  const rnd = prng(opts.seed ?? 42);
  const out: GeneratedFile[] = [];
  const perFile = Math.ceil(opts.components / files);
  let made = 0;
  for (let f = 0; f < files && made < opts.components; f++) {
    const count = Math.min(perFile, opts.components - made);
    made += count;
    out.push({ path: `${folder}/f${f}.mcl`, text: fileText(folder, f, count, rnd) });
  }
  const main = `${folder}/main.mcl`;
  const lines: string[] = [
    '/// The root of the generated workspace.',
    `system Root {`,
    ...out.map((_, f) => `  s${f} = ${folder}.f${f}.S${f}`),
    '  policy {',
    '    exposed only []',
    '  }',
    '}',
    '',
    'target bench {',
    '  backend kvm',
    '  memory 1TiB',
    '  vcpus 64',
    '  overcommit 64',
    '}',
    '',
    'deploy Root to bench',
    '',
  ];
  out.push({ path: main, text: lines.join('\n') });
  // The guest program every component runs (a workspace file, not a module).
  out.push({ path: `${folder}/guest/stage.sh`, text: '#!/bin/sh\n# A generated stage: it does nothing but stay up.\nwhile true; do sleep 60; done\n' });
  let lineCount = 0;
  let bytes = 0;
  for (const f of out) {
    if (!f.path.endsWith('.mcl')) continue;
    lineCount += f.text.split('\n').length;
    bytes += Buffer.byteLength(f.text);
  }
  return { files: out, main, lines: lineCount, bytes };
}

function fileText(folder: string, f: number, count: number, rnd: () => number): string {
  const L: string[] = [];
  L.push(`/// Generated module ${f}: ${count} components wired into a chain.`);
  if (f > 0) L.push(`import ${folder}.f0.{Ping0 as Shared}`);
  L.push('');
  L.push(`type Kind${f} = enum { SMALL, MEDIUM, LARGE }`);
  L.push('');
  L.push(`/// A request of module ${f}.`);
  L.push(`type Ping${f} = {`);
  L.push(`  id: string(1..64, pattern "^[a-z0-9-]+$")`);
  L.push(`  kind: Kind${f}`);
  L.push(`  count?: int(0..1000)`);
  L.push(`  tags: list<string(max 32)>(max 16)`);
  L.push(`  meta: map<string(max 64), string(max 256)>(max 8)`);
  L.push('}');
  L.push('');
  L.push(`type Pong${f} = union {`);
  L.push(`  ok: ${f > 0 ? 'Shared' : `Ping${f}`}`);
  L.push(`  busy`);
  L.push('}');
  L.push('');
  L.push(`protocol Chain${f} {`);
  L.push(`  /// Passes a request down the chain.`);
  L.push(`  call handle(Ping${f}) -> Pong${f}`);
  L.push(`  send note(Ping${f})`);
  L.push('}');
  L.push('');
  for (let c = 0; c < count; c++) {
    const last = c === count - 1;
    L.push(`/// Stage ${c} of chain ${f}.`);
    L.push(`component C${f}_${c} {`);
    // At least the 80MiB a KVM guest boots in (MCL0601 below that), so `mclc plan` of the workspace succeeds.
    L.push(`  memory ${[80, 96, 128][Math.floor(rnd() * 3)]}MiB`);
    L.push(`  vcpus 1`);
    L.push(`  label internal`);
    L.push(`  provide api: Chain${f}`);
    if (!last) L.push(`  require next: Chain${f}`);
    L.push(`  param limit: int(1..${1000 + c}) = ${1 + Math.floor(rnd() * 999)}`);
    L.push(`  param name: string(max 64) = "stage-${f}-${c}"`);
    L.push(`  restart on-failure max ${1 + Math.floor(rnd() * 5)}`);
    L.push(`  program { script "guest/stage.sh" }`);
    L.push('}');
    L.push('');
  }
  L.push(`system S${f} {`);
  for (let c = 0; c < count; c++) L.push(`  c${c} = C${f}_${c}${c % 5 === 0 ? ` { limit = ${c + 1} }` : ''}`);
  for (let c = 0; c + 1 < count; c++)
    L.push(`  connect c${c}.next -> c${c + 1}.api { rate ${100 + c}/s; max_message 64KiB; timeout 2s }`);
  L.push(`  export api = c0.api`);
  L.push('  policy {');
  if (count > 1) L.push(`    c${count - 1} only from c${count - 2}`);
  L.push(`    budget vcpus ${count}`);
  L.push('  }');
  L.push('}');
  L.push('');
  return L.join('\n');
}
