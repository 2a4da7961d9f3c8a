// Generates a valid workspace of about `targetLines` lines for the language
// server benchmark: modules of message types, a protocol, components wired in
// a chain inside a system, and a main system instantiating every module's.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** One module: message types, a protocol, components and a system wiring them (about 100 lines). */
export function moduleText(m: number): string {
  const lines: string[] = [];
  lines.push(`import std.kv.{Kv}`, `import std.log.{Logs}`, '');
  lines.push(`/// Request of module ${m}.`, `type Req${m} = {`, `  id: string(1..64)`, `  count: int(0..1000)`, `  tags: list<string(max 32)>(max 16)`, `}`, '');
  lines.push(`type Resp${m} = union {`, `  ok: Req${m}`, `  missing`, `}`, '');
  lines.push(`protocol Api${m} {`, `  /// Looks a thing up.`, `  call get(Req${m}) -> Resp${m}`, `  send note(Req${m})`, `}`, '');
  for (let c = 0; c < 4; c++) {
    lines.push(
      `/// Component ${c} of module ${m}.`,
      `component C${m}_${c} {`,
      `  memory 96MiB`,
      `  provide api: Api${m}`,
      c > 0 ? `  require next: Api${m}` : `  require store: Kv`,
      `  require log: Logs optional`,
      `  param level: int(0..10) = ${c}`,
      `  param name: string(max 32) = "c${c}"`,
      c === 2 ? `  replicas 2` : `  restart on-failure max 3`,
      `  program { script "run.sh" }`,
      `}`,
      '',
    );
  }
  lines.push(`component Store${m} {`, `  memory 96MiB`, `  provide kv: Kv`, `}`, '');
  lines.push(`system Sys${m} {`);
  for (let c = 0; c < 4; c++) lines.push(`  c${c} = C${m}_${c} { level = ${(c + 1) % 10} }`);
  lines.push(`  store = Store${m}`);
  lines.push(`  connect c0.store -> store.kv { rate 100/s; timeout 2s }`);
  for (let c = 1; c < 4; c++) lines.push(`  connect c${c}.next -> c${c - 1}.api { allow get; max_message 4KiB }`);
  lines.push(`  export api = c3.api`);
  lines.push(`  policy {`, `    store only from c0`, `  }`, `}`, '');
  return lines.join('\n');
}

export function generateWorkspace(root: string, targetLines: number): { files: string[]; lines: number; editFile: string } {
  const files: string[] = [];
  let lines = 0;
  let m = 0;
  while (lines < targetLines - 20) {
    const text = moduleText(m);
    const path = `mods/m${m}.mcl`;
    mkdirSync(join(root, 'mods'), { recursive: true });
    writeFileSync(join(root, 'mods', 'run.sh'), 'echo running\n');
    writeFileSync(join(root, path), text);
    files.push(path);
    lines += text.split('\n').length;
    m++;
  }
  const main = [`system Main {`, ...files.map((_, i) => `  s${i} = mods.m${i}.Sys${i}`), `}`, '', `deploy Main`, ''].join('\n');
  writeFileSync(join(root, 'main.mcl'), main);
  files.push('main.mcl');
  lines += main.split('\n').length;
  return { files, lines, editFile: files[Math.floor(files.length / 2)] };
}

