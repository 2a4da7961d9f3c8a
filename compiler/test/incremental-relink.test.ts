// The root system re-linked instead of checked again (incremental.ts,
// `relinkSystems`): sequences of edits to a module that the root names only as
// the system of instances, each compiled by one IncrementalCompiler and by a
// fresh `compile`, must give the same diagnostics, plan and index, whether the
// root was re-linked or the compile made again.

import { describe, expect, test } from 'vitest';
import { compile, IncrementalCompiler, type CompileOptions } from '../src/index';
import { MemoryHost, observable } from './helpers';

/** A module holding a component, a store and a system of them that exports the component's `api`. */
function mod(m: number): string {
  return [
    `import std.kv.{Kv}`,
    `import std.log.{Logs}`,
    `protocol Api${m} {`,
    `  call get(string) -> string`,
    `}`,
    `component C${m} {`,
    `  memory 96MiB`,
    `  provide api: Api${m}`,
    `  require store: Kv`,
    `  require log: Logs optional`,
    `  program { exec ["/bin/true"] }`,
    `}`,
    `component Store${m} {`,
    `  memory 96MiB`,
    `  provide kv: Kv`,
    `  program { exec ["/bin/true"] }`,
    `}`,
    `system Sys${m} {`,
    `  c = C${m}`,
    `  store = Store${m}`,
    `  connect c.store -> store.kv`,
    `  export api = c.api`,
    `}`,
    '',
  ].join('\n');
}

const TARGET = [`target big {`, `  backend kvm`, `  memory 64GiB`, `  vcpus 64`, `}`];
function workspace(main: string[] = [`system Main {`, `  s0 = mods.m0.Sys0`, `  s1 = mods.m1.Sys1`, `}`, ...TARGET, `deploy Main to big`]): Record<string, string> {
  return { 'mods/m0.mcl': mod(0), 'mods/m1.mcl': mod(1), 'main.mcl': [...main, ''].join('\n') };
}


const options: CompileOptions = { entries: ['main.mcl'], mclcVersion: 't', index: true };

/** Compiles each workspace in turn with one IncrementalCompiler, comparing each result with a full compile; returns the stats of each. */
function steps(...states: Record<string, string>[]) {
  return stepsWith(options, ...states);
}

function stepsWith(options: CompileOptions, ...states: Record<string, string>[]) {
  const inc = new IncrementalCompiler();
  const out: { relinked: number; remade: boolean; checked: number; diagnostics: string[] }[] = [];
  for (const files of states) {
    const got = inc.compile(new MemoryHost({ ...files }), options);
    const want = compile(new MemoryHost({ ...files }), options);
    expect(observable(got)).toEqual(observable(want));
    out.push({ relinked: inc.stats.relinked, remade: inc.stats.remade, checked: inc.stats.checked, diagnostics: got.diagnostics.map((d) => `${d.code} ${d.file}`) });
  }
  return out;
}

const edit = (files: Record<string, string>, file: string, from: string, to: string): Record<string, string> => {
  if (!files[file].includes(from)) throw new Error(`${file} has no ${from}`);
  return { ...files, [file]: files[file].replace(from, to) };
};

/** C1 given a required port to egress through. */
const egress0 = (f: Record<string, string>) => edit(f, 'mods/m1.mcl', 'require store: Kv\n  require log', 'require store: Kv\n  require smtp: std.tcp.Stream\n  require log');

describe('the root re-linked to an edited module gives what a full compile gives', () => {
  const w = workspace();
  const alternate = (a: Record<string, string>, b: Record<string, string>) => steps(a, b, a, b, a, b);

  test('a component grown past the target budget', () => {
    const r = alternate(w, edit(w, 'mods/m1.mcl', 'memory 96MiB', 'memory 70GiB'));
    // main is re-linked each time, and reports the budget its target no longer has, then no more.
    expect(r.slice(1).map((s) => [s.relinked, s.remade, s.diagnostics])).toEqual([1, 2, 3, 4, 5].map((i) => [1, false, i % 2 ? ['MCL0509 main.mcl'] : []]));
  });
  test('an exported port whose protocol, direction or optionality changes', () => {
    alternate(w, edit(w, 'mods/m1.mcl', 'export api = c.api', 'export api = c.log'));
    alternate(w, edit(w, 'mods/m1.mcl', 'export api = c.api', 'export api = c.api\n  export log = c.log'));
    alternate(w, edit(w, 'mods/m1.mcl', 'export api = c.api', 'export api = store.kv'));
    alternate(w, edit(w, 'mods/m1.mcl', 'export api = c.api', ''));
  });
  test('a system renamed, removed, added, made a component', () => {
    alternate(w, edit(w, 'mods/m1.mcl', 'system Sys1', 'system Sys9'));
    alternate(w, edit(w, 'mods/m1.mcl', 'system Sys1', 'system Extra {\n  c = C1\n}\nsystem Sys1'));
    alternate(w, edit(w, 'mods/m1.mcl', 'system Sys1 {', 'component Sys1 {\n  memory 96MiB\n  program { exec ["/bin/true"] }\n}\nsystem Old {'));
  });
  test('a module that fails to parse or goes away, then comes back', () => {
    const broken = edit(w, 'mods/m1.mcl', 'export api = c.api', 'export api = c.api {{');
    steps(w, broken, w, broken, broken, w, w);
    const half = edit(w, 'mods/m1.mcl', '  c = C1\n', '  c = C1\n  x = \n');
    steps(w, half, w, half, w);
    const gone = { ...w };
    delete gone['mods/m1.mcl'];
    steps(w, gone, w, gone, w);
  });
  test('parameters with defaults, labels, policies, replicas', () => {
    alternate(w, edit(w, 'mods/m1.mcl', '  c = C1', '  param n: int(0..9) = 1\n  c = C1'));
    alternate(w, edit(w, 'mods/m1.mcl', 'component C1 {', 'component C1 {\n  label secret'));
    alternate(w, edit(w, 'mods/m1.mcl', '  export api = c.api', '  export api = c.api\n  policy {\n    store only from c\n  }'));
    alternate(w, edit(w, 'mods/m1.mcl', '  export api = c.api', '  export api = c.api\n  policy {\n    store only from store\n  }'));
    alternate(w, edit(w, 'mods/m1.mcl', '  c = C1', '  c = C1 { replicas 3 }'));
    alternate(w, edit(w, 'mods/m1.mcl', '  export api = c.api', '  export api = c.api\n  expose c.api on tcp 8080'));
  });
  test('deploys and targets in the edited module', () => {
    alternate(w, edit(w, 'mods/m1.mcl', 'system Sys1', 'deploy Sys1 to local\nsystem Sys1'));
    const noDeploy = edit(w, 'main.mcl', 'deploy Main to big', '');
    alternate(noDeploy, edit(noDeploy, 'mods/m1.mcl', 'system Sys1', 'system Other {\n  c = C1\n  store = Store1\n  connect c.store -> store.kv\n}\nsystem Sys1'));
    alternate(w, edit(w, 'mods/m1.mcl', 'system Sys1', 'target small {\n  backend kvm\n  memory 1GiB\n  vcpus 1\n}\nsystem Sys1'));
  });
  test('two modules edited at once, and text shifted', () => {
    const both = edit(edit(w, 'mods/m1.mcl', 'memory 96MiB', 'memory 128MiB'), 'mods/m0.mcl', 'memory 96MiB', 'memory 128MiB');
    alternate(w, both);
    alternate(w, edit(w, 'mods/m1.mcl', 'import std.kv', '\n\n\n// moved\nimport std.kv'));
    steps(w, edit(w, 'mods/m1.mcl', 'memory 96MiB', 'memory 128MiB'), edit(w, 'mods/m0.mcl', 'memory 96MiB', 'memory 128MiB'), w);
  });
  test('systems of the root module that hold the edited one', () => {
    const inner = workspace([`system Inner {`, `  s1 = mods.m1.Sys1`, `}`, `system Main {`, `  a = Inner`, `  b = Inner`, `  s0 = mods.m0.Sys0`, `}`, ...TARGET, `deploy Main to big`]);
    alternate(inner, edit(inner, 'mods/m1.mcl', 'memory 96MiB', 'memory 128MiB'));
    alternate(inner, edit(inner, 'mods/m1.mcl', 'export api = c.api', 'export api = c.api\n  export log = c.log'));
    const param = workspace([`system Inner {`, `  param n: int(0..9) = 1`, `  s1 = mods.m1.Sys1`, `}`, `system Main {`, `  a = Inner { n = 2 }`, `  b = Inner`, `}`, ...TARGET, `deploy Main to big`]);
    alternate(param, edit(param, 'mods/m1.mcl', 'memory 96MiB', 'memory 128MiB'));
    const unused = workspace([`system Spare {`, `  s1 = mods.m1.Sys1`, `}`, `system Main {`, `  s0 = mods.m0.Sys0`, `}`, ...TARGET, `deploy Main to big`]);
    alternate(unused, edit(unused, 'mods/m1.mcl', 'memory 96MiB', 'memory 128MiB'));
    const nodeploy = workspace([`system Spare {`, `  s1 = mods.m1.Sys1`, `}`, `system Main {`, `  s0 = mods.m0.Sys0`, `}`]);
    alternate(nodeploy, edit(nodeploy, 'mods/m1.mcl', 'memory 96MiB', 'memory 128MiB'));
  });
  test('policies of the root that cover the edited system without naming it', () => {
    const two = [`target a {`, `  backend kvm`, `  memory 64GiB`, `  vcpus 64`, `  host "ssh://mcl@a/srv/s"`, `}`, `target b {`, `  backend kvm`, `  memory 64GiB`, `  vcpus 64`, `  host "ssh://mcl@b/srv/s"`, `}`];
    const ruled = workspace([`labels { public < secret }`, `system Main {`, `  s0 = mods.m0.Sys0`, `  s1 = mods.m1.Sys1`, `  policy {`, `    budget memory 1GiB`, `    budget vcpus 8`, `    egress only []`, `    label secret only on [a]`, `    exposed only []`, `  }`, `}`, ...two, `deploy Main to [a, b] {`, `  place s0 on b`, `}`]);
    const first = steps(ruled);
    expect(first[0].diagnostics).toEqual([]);
    const budget = alternate(ruled, edit(ruled, 'mods/m1.mcl', 'memory 96MiB', 'memory 2GiB'));
    expect(budget[1]).toMatchObject({ relinked: 1, remade: false, diagnostics: ['MCL0512 main.mcl'] });
    const egress = alternate(ruled, edit(egress0(ruled), 'mods/m1.mcl', '  export api = c.api', '  export api = c.api\n  egress mail: c.smtp -> "tcp://smtp.example.com:25"'));
    expect(egress[1]).toMatchObject({ relinked: 1, remade: false, diagnostics: ['MCL0545 main.mcl'] });
    alternate(ruled, edit(ruled, 'mods/m1.mcl', 'component C1 {', 'component C1 {\n  vcpus 16'));
    alternate(ruled, edit(ruled, 'mods/m1.mcl', 'component C1 {', 'component C1 {\n  label secret'));
    alternate(ruled, edit(ruled, 'mods/m1.mcl', 'memory 96MiB\n  provide api', 'memory 96MiB\n  require out: std.tcp.Stream\n  provide api'));
    alternate(ruled, edit(ruled, 'mods/m1.mcl', '  export api = c.api', '  export api = c.api\n  expose c.api on tcp 8080'));
    alternate(ruled, egress0(ruled));
    const apart = edit(ruled, 'main.mcl', '    budget vcpus 8', '    budget vcpus 8\n    apart s0, s0');
    steps(apart, edit(apart, 'mods/m1.mcl', 'memory 96MiB', 'memory 128MiB'));
  });
  test('an instance of the edited module that fails, then its module is fixed', () => {
    alternate(w, edit(w, 'mods/m1.mcl', 'connect c.store -> store.kv', 'connect c.store -> nope.kv'));
    alternate(w, edit(w, 'mods/m1.mcl', 'connect c.store -> store.kv', ''));
    alternate(w, edit(w, 'mods/m1.mcl', 'component C1 {', 'component C1 {\n  memroy 1GiB'));
    alternate(w, edit(w, 'mods/m1.mcl', 'import std.kv.{Kv}', 'import std.kv.{Kvx}'));
    alternate(w, edit(w, 'mods/m1.mcl', 'import std.kv.{Kv}', 'import mods.gone.{Kv}'));
  });
  test('a check of a taken-over system with new arguments, made by a compile that is then made again, is reported by it', () => {
    // lib is taken over; m1 comes to hold its system with an argument out of range for a component of it, which
    // the check of that system with that argument reports at m1, and to export a required port that main must
    // report unwired, so that main cannot be re-linked: the first try checks P with that argument, then gives up.
    const lib = `import std.kv.{Kv}\ncomponent Leveled {\n  memory 96MiB\n  provide kv: Kv\n  param level: int(0..2) = 1\n  program { exec ["/bin/true"] }\n}\nsystem P {\n  param n: int(0..9) = 1\n  c = Leveled { level = n }\n}\n`;
    const files = { ...w, 'mods/lib.mcl': lib, 'main.mcl': w['main.mcl'].replace('  s1 = mods.m1.Sys1', '  s1 = mods.m1.Sys1\n  p = mods.lib.P') };
    const held = edit(files, 'mods/m1.mcl', '  store = Store1', '  store = Store1\n  p = mods.lib.P { n = 3 }');
    const required = edit(edit(held, 'mods/m1.mcl', 'export api = c.api', 'export api = c.api\n  export log = c.log'), 'mods/m1.mcl', 'require log: Logs optional', 'require log: Logs');
    const [, second] = steps(files, required);
    expect(second.remade).toBe(true);
    expect(second.diagnostics).toContain('MCL0312 mods/m1.mcl');
    expect(second.diagnostics).toContain('MCL0406 main.mcl');
  });
  test('two modules that name the edited one, each an entry, as the language server compiles every file', () => {
    // Both are re-linked, or, where one of them cannot be, the compile is made again with both checked.
    const files = { ...w, 'other.mcl': `system Other {\n  t1 = mods.m1.Sys1\n}\n` };
    const all: CompileOptions = { ...options, entries: ['main.mcl', 'other.mcl', 'mods/m0.mcl', 'mods/m1.mcl'] };
    const bigger = edit(files, 'mods/m1.mcl', 'memory 96MiB', 'memory 128MiB');
    expect(stepsWith(all, files, bigger, files)[1]).toMatchObject({ relinked: 2, remade: false });
    const required = edit(edit(bigger, 'mods/m1.mcl', 'export api = c.api', 'export api = c.api\n  export log = c.log'), 'mods/m1.mcl', 'require log: Logs optional', 'require log: Logs');
    expect(stepsWith(all, files, required, bigger, required, files)[1]).toMatchObject({ remade: true });
  });
  test('a root that gives arguments to a system of a module not edited is still re-linked to the edited one', () => {
    // The arguments are written in main, whose text is the same: P's check with them is taken over, main re-linked.
    const lib = `component Leveled {\n  memory 96MiB\n  param level: int(0..2) = 1\n  program { exec ["/bin/true"] }\n}\nsystem P {\n  param n: int(0..9) = 1\n  c = Leveled { level = n }\n}\n`;
    const files = { ...w, 'mods/lib.mcl': lib, 'main.mcl': w['main.mcl'].replace('  s1 = mods.m1.Sys1', '  s1 = mods.m1.Sys1\n  p = mods.lib.P { n = 2 }') };
    const r = steps(files, edit(files, 'mods/m1.mcl', 'memory 96MiB', 'memory 128MiB'), files);
    expect(r.slice(1).map((s) => [s.checked, s.relinked, s.remade])).toEqual([[1, 1, false], [1, 1, false]]);
  });
});

describe('the earlier state a compile takes over', () => {
  test('is not added to: a new check of a system taken over goes into a copy of its checks', async () => {
    // The state may be read again after the compile that took it over: a compile made again from it
    // (compileWith) must find only what the earlier compile checked.
    const { compileWith } = await import('../src/compile');
    const lib = [`component K {`, `  memory 96MiB`, `  program { exec ["/bin/true"] }`, `}`, `system P {`, `  param n: int(0..9) = 1`, `  k = K`, `}`, ''].join('\n');
    const first = { 'lib.mcl': lib, 'main.mcl': [`system Main {`, `  p = lib.P`, `}`, ''].join('\n') };
    const second = { ...first, 'main.mcl': [`system Main {`, `  p = lib.P`, `  q = lib.P { n = 3 }`, `}`, ''].join('\n') };
    // Parses kept by path and text, as the IncrementalCompiler keeps them: a module is taken over only with its tree.
    const parses = new Map<string, unknown>();
    const cache = { get: (path: string, text: string) => parses.get(`${path}\u0000${text}`), set: (path: string, text: string, parsed: unknown) => void parses.set(`${path}\u0000${text}`, parsed) };
    const opts = { ...options, cache } as CompileOptions;
    const one = compileWith(new MemoryHost(first), opts, undefined);
    expect(one.state).toBeDefined();
    expect(one.result.diagnostics.map((d) => d.message)).toEqual([]);
    const before = one.state!.systems.all().length;
    const two = compileWith(new MemoryHost(second), opts, one.state);
    // The second compile took lib over and checked P with the new argument: its own state has one check more.
    expect(two.state!.reused).toBeGreaterThan(0);
    expect(two.state!.systems.all().length).toBe(before + 1);
    expect(one.state!.systems.all().length).toBe(before);
    expect(observable(two.result)).toEqual(observable(compile(new MemoryHost(second), options)));
  });
});
