// Generates a large, valid workspace for the benchmark: `components`
// components spread over modules of `perModule` components each. Every module
// declares its message types and a protocol, a chain of components wired
// through it, and a system; the root module instantiates every module's
// system and links neighbouring modules, so the plan has one channel per
// component and nested instance ids.

export interface Workspace {
  files: Record<string, string>;
  entry: string;
  lines: number;
  bytes: number;
}

export function generateWorkspace(components: number, perModule = 50): Workspace {
  const files: Record<string, string> = {};
  const modules = Math.ceil(components / perModule);
  let made = 0;
  const root: string[] = ['/// The generated root system.', 'system Root {'];
  const imports: string[] = [];
  for (let k = 0; k < modules; k++) {
    const n = Math.min(perModule, components - made);
    made += n;
    const out: string[] = [];
    out.push(`/// Generated module ${k}.`, 'import std.log.{Logs}', '');
    out.push(`type Item${k} = {`, '  id: string(1..64, pattern "^[a-z0-9-]+$")', '  quantity: int(0..1000)', '  tags?: list<string(max 32)>(max 8)', '  kind: enum { small, large }', '}', '');
    out.push(`protocol Step${k} {`, `  /// Passes one item on.`, `  call pass(Item${k}) -> { ok: bool }`, `  send note({ text: string(max 256) })`, '  order (pass | note)*', '}', '');
    for (let i = 0; i < n; i++) {
      out.push(`/// Stage ${i} of module ${k}.`);
      out.push(`component C${k}_${i} {`);
      out.push(`  memory ${i % 3 === 0 ? '128MiB' : '96MiB'}`);
      out.push('  label internal');
      out.push(`  param threshold: int(0..1000) = ${i}`);
      out.push(`  param name: string(max 64) = "stage-${k}-${i}"`);
      out.push(`  provide input: Step${k}`);
      if (i + 1 < n) out.push(`  require output: Step${k}`);
      else out.push(`  require output: Step${k} optional`);
      out.push('  require log: Logs optional');
      out.push('  restart on-failure max 3');
      out.push('  program {');
      out.push('    exec ["/bin/sh", "-c", "exec mcl-msg serve input cat"]');
      out.push(`    env { STAGE = "${i}" }`);
      out.push('  }');
      out.push('}');
      out.push('');
    }
    out.push(`system M${k} {`);
    for (let i = 0; i < n; i++) out.push(`  c${i} = C${k}_${i}${i % 10 === 0 ? ` { threshold = ${i + 1} }` : ''}`);
    for (let i = 0; i + 1 < n; i++) out.push(`  connect c${i}.output -> c${i + 1}.input { rate 100/s; timeout 2s }`);
    out.push('  export head = c0.input');
    if (process.env.MCL_BENCH_BUDGETS !== "0") out.push(`  policy { budget vcpus ${n * 2} }`);
    out.push('}');
    files[`gen/m${k}.mcl`] = out.join('\n') + '\n';
    imports.push(`import gen.m${k}.{M${k}}`);
    root.push(`  m${k} = M${k}`);
  }
  root.push('}', '', 'target big {', '  backend kvm', '  memory 1TiB', '  vcpus 256', '  overcommit 64', '}', '', 'deploy Root to big');
  files['root.mcl'] = [...imports, '', ...root].join('\n') + '\n';
  let lines = 0;
  let bytes = 0;
  for (const t of Object.values(files)) {
    lines += t.split('\n').length - 1;
    bytes += t.length;
  }
  return { files, entry: 'root.mcl', lines, bytes };
}
