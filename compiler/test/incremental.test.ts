// Incremental analysis gives the same results as a full compile: random
// sequences of edits to multi-module workspaces, each compiled by one
// IncrementalCompiler that keeps its state between the edits and by a fresh
// `compile`, must give the same diagnostics, the same plan and the same symbol
// index; and an edit to one module checks only it and what depends on it.

import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { join } from 'node:path';
import { canonicalJson, compile, IncrementalCompiler, type CompileOptions, type CompileResult } from '../src/index';
import { Codes } from '@mcl/language';
import { MemoryHost, observable, readTree, REPO } from './helpers';

/** A module of the language server's benchmark shape: types, a protocol, components and a system wiring them. */
function moduleText(m: number, extra = '', scripts = false): string {
  return [
    `import std.kv.{Kv}`,
    `import std.log.{Logs}`,
    m > 0 ? `import mods.m${m - 1}.{Req${m - 1}}` : '',
    ``,
    `type Req${m} = { id: string(1..64), count: int(0..1000)${m > 0 ? `, prev?: Req${m - 1}` : ''} }`,
    `type Resp${m} = union { ok: Req${m}, missing }`,
    `protocol Api${m} {`,
    `  call get(Req${m}) -> Resp${m}`,
    `  send note(Req${m})`,
    `}`,
    `component C${m}_0 {`,
    `  memory 96MiB`,
    `  provide api: Api${m}`,
    `  require store: Kv`,
    `  require log: Logs optional`,
    `  param level: int(0..10) = 1`,
    `  program { exec ["/bin/true"] }`,
    `}`,
    `component C${m}_1 {`,
    `  memory 96MiB`,
    `  provide api: Api${m}`,
    `  require next: Api${m}`,
    `  replicas 2`,
    scripts ? `  program { script "run${m % 2}.sh"; file "/etc/app.conf" from "../conf/app.conf" }` : `  program { exec ["/bin/true"] }`,
    `}`,
    `component Store${m} {`,
    `  memory 96MiB`,
    `  provide kv: Kv`,
    `  program { exec ["/bin/true"] }`,
    `}`,
    `system Sys${m} {`,
    `  c0 = C${m}_0 { level = 2 }`,
    `  c1 = C${m}_1`,
    `  store = Store${m}`,
    `  connect c0.store -> store.kv { rate 100/s }`,
    `  connect c1.next -> c0.api { allow get; max_message 4KiB }`,
    `  export api = c1.api`,
    `  policy {`,
    `    store only from c0`,
    `  }`,
    `}`,
    extra,
  ].join('\n');
}

function generated(n: number, scripts = false): { files: Record<string, string>; entry: string } {
  const files: Record<string, string> = {};
  for (let m = 0; m < n; m++) files[`mods/m${m}.mcl`] = moduleText(m, '', scripts);
  if (scripts) {
    // Programs read workspace files: a plan must follow their text, whatever the compile took over.
    files['mods/run0.sh'] = 'echo zero\n';
    files['mods/run1.sh'] = 'echo one\n';
    files['conf/app.conf'] = 'level=1\n';
  }
  files['main.mcl'] = [`labels { public < internal < secret }`, `system Main {`, ...Array.from({ length: n }, (_, i) => `  s${i} = mods.m${i}.Sys${i}`), `}`, '', `target big {`, `  backend kvm`, `  memory 64GiB`, `  vcpus 64`, `  overcommit 4`, `}`, `deploy Main to big`, ''].join('\n');
  return { files, entry: 'main.mcl' };
}

const examples = ['webstack', 'honeypot', 'cluster'].map((n) => ({ files: readTree(join(REPO, 'examples', n)), entry: `${n}.mcl` }));
/** A workspace with a policy violation from the start, so that edit sequences take over results with diagnostics. */
function violated(): { files: Record<string, string>; entry: string } {
  const w = generated(3, true);
  return { ...w, files: { ...w.files, 'mods/m1.mcl': w.files['mods/m1.mcl'].replace('store only from c0', 'store only from c1') } };
}
/**
 * The root wires, exposes and sizes what its subsystems hold from outside, so that edits to it
 * change what reaches the subtrees the plan body takes over as blocks.
 */
function wiredFromOutside(): { files: Record<string, string>; entry: string } {
  const w = generated(3, true);
  const main = [
    `component Probe {`,
    `  memory 96MiB`,
    `  require a: mods.m0.Api0 optional`,
    `  require b: mods.m1.Api1 optional`,
    `  program { exec ["/bin/true"] }`,
    `}`,
    `system Main {`,
    `  s0 = mods.m0.Sys0`,
    `  s1 = mods.m1.Sys1`,
    `  s2 = mods.m2.Sys2`,
    `  probe = Probe`,
    `  connect probe.a -> s0.api`,
    `  connect probe.b -> s1.api`,
    `  expose s2.api on tcp 8080`,
    `}`,
    `target big {`,
    `  backend kvm`,
    `  memory 64GiB`,
    `  vcpus 64`,
    `}`,
    `deploy Main to big`,
    '',
  ].join('\n');
  return { files: { ...w.files, 'main.mcl': main }, entry: 'main.mcl' };
}
/** A target whose backend cannot realise what two subtrees hold, so that the capability check reports in subtrees taken over. */
function unrealisable(): { files: Record<string, string>; entry: string } {
  const w = generated(4);
  const image = (m: number, wide: boolean, mine: boolean) => (text: string) =>
    text.replace(`component Store${m} {\n  memory 96MiB`, `component Store${m} {\n  memory 96MiB${mine ? '\n  image mods.img.mine' : ''}`).replace(`  store = Store${m}`, `  store = Store${m}${wide ? '\n  wide = mods.img.Wide' : ''}`);
  const files: Record<string, string> = {
    ...w.files,
    // A backend without per-session forks or kernels of this machine, an image with such a kernel used
    // in two subtrees, and a component with more ports than its guests have in two others (both reported
    // once, at the declaration). In flat order the subtrees are s3, s2, s1, s0.
    'main.mcl': w.files['main.mcl'].replace(/target big \{[^}]*\}/, 'target big {\n  backend kubevirt\n  namespace "shop"\n  memory 64GiB\n  vcpus 64\n}'),
    'mods/img.mcl': `import std.kv.{Kv}\nimage mine {\n  base "busybox-static"\n  kernel "/boot/vmlinuz"\n}\ncomponent Wide {\n  memory 96MiB\n${Array.from({ length: 31 }, (_, i) => `  require p${i}: Kv optional\n`).join('')}}\n`,
    'mods/m0.mcl': image(0, true, false)(w.files['mods/m0.mcl']),
    'mods/m1.mcl': image(1, false, true)(w.files['mods/m1.mcl']),
    'mods/m2.mcl': image(2, true, true)(w.files['mods/m2.mcl']),
    'mods/m3.mcl': w.files['mods/m3.mcl'].replace('  param level: int(0..10) = 1', '  param level: int(0..10) = 1\n  per session max 4'),
  };
  return { files, entry: 'main.mcl' };
}
const workspaces: { files: Record<string, string>; entry: string }[] = [generated(4), generated(3, true), violated(), wiredFromOutside(), unrealisable(), ...examples];

// Edits that keep a file parseable but change what it means (a name, a size, a port), as well as ones that break it.
const REPLACEMENTS: [string, string][] = [
  ['Kv', 'Kvx'],
  ['96MiB', '1GiB'],
  ['replicas 2', 'replicas 3'],
  ['count: int(0..1000)', 'count: int(0..10)'],
  ['provide api', 'provide apj'],
  ['allow get;', 'allow note;'],
  ['level = 2', 'level = 20'],
  ['store only from c0', 'store only from c1'],
  ['Req', 'Rq'],
  ['memory', 'memroy'],
  // Meaning unchanged, every later location in the file moved: a result taken over must still place its diagnostics here.
  ['\nsystem Sys', '\n\n\nsystem Sys'],
  ['policy {', 'policy {\n    // checked\n'],
  // What reaches a subsystem from outside changes: a channel, an exposure, a component's ports.
  ['connect probe.a -> s0.api', 'connect probe.a -> s2.api'],
  ['on tcp 8080', 'on tcp 8081'],
  // What a system that main holds exports or takes changes: main, taken over and re-linked otherwise, is checked again.
  ['  export api = c1.api', '  export api = c1.api\n  export log = c0.log'],
  ['require log: Logs optional', 'require log: Logs'],
  ['  c0 = C', '  param width: int(0..9)\n  c0 = C'],
  ['system Sys', 'system Sy'],
  ['  require b: mods.m1.Api1 optional', '  require b: mods.m1.Api1 optional\n  require c: mods.m1.Api1 optional\n  require d: mods.m1.Api1 optional\n  require e: mods.m1.Api1 optional'],
];
const TOKENS = ['{', '}', '.', ',', '=', '->', 'x', 'Kv', 'system', 'import std.kv.*', 'label secret', '\n'];

const edit = fc.record({
  file: fc.nat(),
  op: fc.constantFrom('replace', 'revert', 'insert', 'delete', 'token', 'append', 'program'),
  pos: fc.nat(),
  len: fc.integer({ min: 1, max: 8 }),
  pick: fc.nat(),
});

function apply(files: Record<string, string>, original: Record<string, string>, e: { file: number; op: string; pos: number; len: number; pick: number }): void {
  if (e.op === 'program') {
    // A program file changes, disappears or comes back.
    const programs = Object.keys(original).filter((f) => !f.endsWith('.mcl')).sort();
    if (programs.length === 0) return;
    const f = programs[e.file % programs.length];
    if (e.pick % 3 === 0) delete files[f];
    else files[f] = e.pick % 3 === 1 ? original[f] : `${original[f]}echo ${e.pos % 5}\n`;
    return;
  }
  const names = Object.keys(original).filter((f) => f.endsWith('.mcl')).sort();
  const f = names[e.file % names.length];
  let text = files[f] ?? '';
  const p = e.pos % (text.length + 1);
  switch (e.op) {
    case 'replace': {
      const [a, b] = REPLACEMENTS[e.pick % REPLACEMENTS.length];
      const [from, to] = text.includes(a) ? [a, b] : [b, a];
      text = text.replace(from, to);
      break;
    }
    case 'revert':
      text = original[f];
      break;
    case 'insert':
      text = text.slice(0, p) + 'xy'.slice(0, 1 + (e.pick % 2)) + text.slice(p);
      break;
    case 'delete':
      text = text.slice(0, p) + text.slice(p + e.len);
      break;
    case 'token':
      text = text.slice(0, p) + ' ' + TOKENS[e.pick % TOKENS.length] + ' ' + text.slice(p);
      break;
    default:
      text += `\ntype Extra${e.pick % 3} = int\n`;
  }
  files[f] = text;
}


describe('incremental analysis', () => {
  test('random edit sequences give the same diagnostics, plans and index as a full compile', () => {
    let reused = 0;
    let inPlace = 0;
    let instancesInPlace = 0;
    let policiesReused = 0;
    let policiesReusedWithDiagnostics = 0;
    let blocks = 0;
    let relinked = 0;
    let remade = 0;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: workspaces.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 8 }), (wi, edits) => {
        const w = workspaces[wi];
        const files = { ...w.files };
        const inc = new IncrementalCompiler();
        const options: CompileOptions = { entries: [w.entry], mclcVersion: 't', index: true };
        let last = inc.compile(new MemoryHost({ ...files }), options);
        for (const e of edits) {
          apply(files, w.files, e);
          const got = inc.compile(new MemoryHost({ ...files }), options);
          const want = compile(new MemoryHost({ ...files }), options);
          expect(observable(got)).toEqual(observable(want));
          reused += inc.stats.reused;
          policiesReused += inc.stats.policiesReused;
          if (inc.stats.policiesReused && got.diagnostics.some((d) => d.code.startsWith('MCL05'))) policiesReusedWithDiagnostics++;
          if (got.program.symbols === last.program.symbols) inPlace++;
          if (got.program.instances === last.program.instances) instancesInPlace++;
          blocks += inc.stats.planBlocksReused;
          relinked += inc.stats.relinked;
          if (inc.stats.remade) remade++;
          last = got;
        }
      }),
      { numRuns: 60, seed: 20261206 },
    );
    // The sequences must exercise taking modules over, not only checking everything again.
    expect(reused).toBeGreaterThan(100);
    // And updating the symbol map taken over in place, not only building it afresh.
    expect(inPlace).toBeGreaterThan(20);
    // And the instances' settings, likewise.
    expect(instancesInPlace).toBeGreaterThan(20);
    // And taking policy results over, with policy diagnostics among them too.
    expect(policiesReused).toBeGreaterThan(20);
    expect(policiesReusedWithDiagnostics).toBeGreaterThan(2);
    // And taking subtrees' plan objects over as blocks.
    expect(blocks).toBeGreaterThan(20);
    // And re-linking a module to the new systems of modules checked again, and making a compile again where it cannot be.
    expect(relinked).toBeGreaterThan(20);
    expect(remade).toBeGreaterThan(2);
  }, 120_000);

  test('random edit sequences whose first compile is already edited, and often broken, give the same results as a full compile', () => {
    // The first compile builds the plan body whole even where an error stops the plan: what it reports,
    // and what the compiles after it take over from it, must be what a full compile gives.
    let stoppedFirst = 0;
    let blocksAfterStopped = 0;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: workspaces.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 3 }), fc.array(edit, { minLength: 1, maxLength: 4 }), fc.boolean(), (wi, before, edits, emitPlan) => {
        const w = workspaces[wi];
        const files = { ...w.files };
        for (const e of before) apply(files, w.files, e);
        const inc = new IncrementalCompiler();
        const options: CompileOptions = { entries: [w.entry], mclcVersion: 't', index: true, emitPlan };
        const first = inc.compile(new MemoryHost({ ...files }), options);
        expect(observable(first)).toEqual(observable(compile(new MemoryHost({ ...files }), options)));
        const stopped = first.diagnostics.some((d) => d.severity === 'error' && !d.code.startsWith('MCL05'));
        if (stopped) stoppedFirst++;
        // The edits, then every file as it was (the workspace fixed).
        const steps = [...edits.map((e) => () => apply(files, w.files, e)), () => Object.assign(files, w.files)];
        for (const step of steps) {
          step();
          const got = inc.compile(new MemoryHost({ ...files }), options);
          expect(observable(got)).toEqual(observable(compile(new MemoryHost({ ...files }), options)));
          if (stopped) blocksAfterStopped += inc.stats.planBlocksReused;
        }
      }),
      { numRuns: 80, seed: 20261207 },
    );
    // The sequences must start from broken workspaces, and take the first body's subtrees over after them.
    expect(stoppedFirst).toBeGreaterThan(20);
    expect(blocksAfterStopped).toBeGreaterThan(5);
  }, 120_000);

  test('an edit checks the edited module and its dependents only, and a revert the same', () => {
    const w = generated(6);
    const inc = new IncrementalCompiler();
    const options: CompileOptions = { entries: [w.entry], mclcVersion: 't', index: true };
    const first = inc.compile(new MemoryHost(w.files), options);
    expect(first.diagnostics.filter((d) => d.severity === "error").map((d) => d.message)).toEqual([]);
    expect(inc.stats.reused).toBe(0);
    // m5 is named by nobody but main, which names it only as the system of an instance: m5 is checked,
    // main taken over and re-linked to m5's new system, the rest (4 modules, std) taken over.
    const edited: Record<string, string> = { ...w.files, 'mods/m5.mcl': w.files['mods/m5.mcl'].replace('96MiB', '128MiB') };
    const second = inc.compile(new MemoryHost(edited), options);
    expect(inc.stats.checked).toBe(1);
    expect(canonicalJson(second.plan!)).toEqual(canonicalJson(compile(new MemoryHost(edited), options).plan!));
    // The symbol map is taken over and updated in place rather than copied.
    expect(second.program.symbols).toBe(first.program.symbols);
    // The plan body builds m5's three instances and two channels again and takes over the other modules' objects.
    expect(inc.stats.planObjectsBuilt).toBe(5);
    expect(inc.stats.planObjectsReused).toBe(25);
    // Elaboration flattens Main and s5 again and takes over the other five systems' subtrees.
    expect(inc.stats.subtreesFlattened).toBe(2);
    expect(inc.stats.subtreesReused).toBe(5);
    expect(second.plan!.instances.find((i) => i.id === 's0.c0')).toBe(first.plan!.instances.find((i) => i.id === 's0.c0'));
    // m2 is imported by m3, which m4 imports, ...: all of them are checked, main re-linked.
    const deeper: Record<string, string> = { ...edited, 'mods/m2.mcl': edited['mods/m2.mcl'].replace('96MiB', '128MiB') };
    inc.compile(new MemoryHost(deeper), options);
    expect(inc.stats.checked).toBe(4);
    // A message type changes: the plan's schema of it follows.
    const narrower = { ...deeper, 'mods/m5.mcl': deeper['mods/m5.mcl'].replace('count: int(0..1000)', 'count: int(0..10)') };
    const third = inc.compile(new MemoryHost(narrower), options);
    expect(JSON.stringify(third.plan!.schemas['mods.m5.Req5'])).toContain('10');
    expect(canonicalJson(third.plan!)).toEqual(canonicalJson(compile(new MemoryHost(narrower), options).plan!));
    expect(canonicalJson(inc.compile(new MemoryHost(deeper), options).plan!)).toEqual(canonicalJson(compile(new MemoryHost(deeper), options).plan!));
    // Nothing changed: nothing is checked again.
    inc.compile(new MemoryHost(deeper), options);
    expect(inc.stats.checked).toBe(0);
  });

  test('main, taken over and re-linked while what it reads of a system it holds is the same, is checked again when that changes', () => {
    const w = generated(3);
    const inc = new IncrementalCompiler();
    const options: CompileOptions = { entries: [w.entry], mclcVersion: 't', index: true };
    const step = (files: Record<string, string>) => {
      const got = inc.compile(new MemoryHost(files), options);
      expect(observable(got)).toEqual(observable(compile(new MemoryHost(files), options)));
      return got;
    };
    const first = step(w.files);
    const edit = (files: Record<string, string>, from: string, to: string) => ({ ...files, 'mods/m1.mcl': files['mods/m1.mcl'].replace(from, to) });
    // An edit main does not read: m1 and m2 (which imports it) are checked, main's systems re-linked to their new ones.
    const bigger = edit(w.files, 'memory 96MiB', 'memory 128MiB');
    const second = step(bigger);
    expect([inc.stats.checked, inc.stats.relinked, inc.stats.remade]).toEqual([2, 1, false]);
    expect(second.plan!.instances.find((i) => i.id === 's1.c0')!.memory_bytes).toBe(128 * 2 ** 20);
    expect(second.plan!.instances.find((i) => i.id === 's0.c0')).toBe(first.plan!.instances.find((i) => i.id === 's0.c0'));
    // Sys1 exports a port it requires: main must report it unwired.
    const required = edit(edit(bigger, '  export api = c1.api', '  export api = c1.api\n  export log = c0.log'), 'require log: Logs optional', 'require log: Logs');
    const third = step(required);
    expect(inc.stats.remade).toBe(true);
    expect(third.diagnostics.some((d) => d.file === 'main.mcl' && d.message.includes('s1.log'))).toBe(true);
    // Made optional again: main, which had a diagnostic, is checked again, and is re-linked on the next edit.
    step(edit(required, 'require log: Logs', 'require log: Logs optional'));
    expect([inc.stats.relinked, inc.stats.remade]).toEqual([0, false]);
    step(bigger);
    expect([inc.stats.relinked, inc.stats.remade]).toEqual([1, false]);
    // Sys1 renamed, or given a parameter: main is checked again (and reports the unknown name).
    const renamed = step(edit(bigger, 'system Sys1', 'system Sys9'));
    expect(inc.stats.remade).toBe(true);
    expect(renamed.diagnostics.some((d) => d.file === 'main.mcl')).toBe(true);
    step(bigger);
    step(edit(bigger, '  c0 = C', '  param width: int(0..9)\n  c0 = C'));
    expect(inc.stats.remade).toBe(true);
  });

  describe('a module taken over and re-linked is checked again where it reads more of an edited module than a system', () => {
    const options: CompileOptions = { entries: ['main.mcl'], mclcVersion: 't', index: true };
    /** Compiles `before` then `after` incrementally, comparing with a full compile; returns the last stats. */
    const run = (before: Record<string, string>, after: Record<string, string>) => {
      const inc = new IncrementalCompiler();
      inc.compile(new MemoryHost(before), options);
      const got = inc.compile(new MemoryHost(after), options);
      const want = compile(new MemoryHost(after), options);
      expect(observable(got)).toEqual(observable(want));
      return { got, stats: { ...inc.stats } };
    };
    const main = (lines: string[]) => [...lines, `target big {`, `  backend kvm`, `  memory 64GiB`, `  vcpus 64`, `}`, `deploy Main to big`, ''].join('\n');
    const w = generated(2);

    test('an instance it names elsewhere: its exposure follows the port the system now exports', () => {
      const files: Record<string, string> = { ...w.files, 'main.mcl': main([`system Main {`, `  s0 = mods.m0.Sys0`, `  s1 = mods.m1.Sys1`, `  expose s0.api on tcp 8080`, `}`]) };
      const after = { ...files, 'mods/m0.mcl': files['mods/m0.mcl'].replace('export api = c1.api', 'export api = c0.api') };
      const { got, stats } = run(files, after);
      expect(stats.relinked).toBe(0);
      expect(JSON.stringify(got.plan!.exposures)).toContain('s0.c0');
    });

    test('a protocol it names: its channels carry the protocol as it is now', () => {
      const files: Record<string, string> = { ...w.files, 'main.mcl': main([`component Probe {`, `  memory 96MiB`, `  require a: mods.m1.Api1`, `  program { exec ["/bin/true"] }`, `}`, `component Prov {`, `  memory 96MiB`, `  provide p: mods.m1.Api1`, `  program { exec ["/bin/true"] }`, `}`, `system Main {`, `  s1 = mods.m1.Sys1`, `  probe = Probe`, `  prov = Prov`, `  connect probe.a -> prov.p`, `}`]) };
      const after = { ...files, 'mods/m1.mcl': files['mods/m1.mcl'].replace('send note(Req1)', 'send notes(Req1)') };
      const { got, stats } = run(files, after);
      expect(stats.relinked).toBe(0);
      expect(JSON.stringify(got.plan!.channels.find((c) => c.from.instance === 'probe'))).toContain('notes');
    });

    test('a module that depends on it: it sees the new systems through it', () => {
      const files: Record<string, string> = { ...w.files, 'mods/mid.mcl': `system Mid {\n  s1 = mods.m1.Sys1\n}\n`, 'main.mcl': main([`system Main {`, `  mid = mods.mid.Mid`, `}`]) };
      const after = { ...files, 'mods/m1.mcl': files['mods/m1.mcl'].replace('memory 96MiB', 'memory 128MiB') };
      const { got, stats } = run(files, after);
      // main, on which nothing depends, is re-linked; mid, on which main depends, is checked again.
      expect(stats.relinked).toBe(1);
      expect(got.plan!.instances.find((i) => i.id === 'mid.s1.c0')!.memory_bytes).toBe(128 * 2 ** 20);
    });

    test('a system that comes to contain itself: its modules are checked in the order a full compile checks them', () => {
      const files: Record<string, string> = { ...w.files, 'main.mcl': main([`system Main {`, `  s1 = mods.m1.Sys1`, `}`]) };
      const looped = files['mods/m1.mcl'].replace('system Sys1 {', 'system Back1 {\n  s = Sys1\n}\nsystem Sys1 {\n  loop = Back1');
      const { got, stats } = run(files, { ...files, 'mods/m1.mcl': looped });
      expect(stats.remade).toBe(true);
      expect(got.diagnostics.some((d) => d.message.includes('contains itself'))).toBe(true);
    });
  });

  test('a program file that changes, or disappears, changes the plan although its component was taken over', () => {
    const w = generated(2, true);
    const inc = new IncrementalCompiler();
    const options: CompileOptions = { entries: [w.entry], mclcVersion: 't', index: true };
    inc.compile(new MemoryHost(w.files), options);
    const changed = { ...w.files, 'mods/run1.sh': 'echo changed\n' };
    const a = inc.compile(new MemoryHost(changed), options);
    expect(a.plan!.instances.find((i) => i.id === 's1.c1')!.program.files.find((f) => f.path === '/mcl/program/run1.sh')!.content).toBe('echo changed\n');
    expect(canonicalJson(a.plan!)).toEqual(canonicalJson(compile(new MemoryHost(changed), options).plan!));
    const gone: Record<string, string> = { ...changed };
    delete gone['conf/app.conf'];
    const b = inc.compile(new MemoryHost(gone), options);
    expect(b.diagnostics).toEqual(compile(new MemoryHost(gone), options).diagnostics);
    expect(b.diagnostics.filter((d) => d.code === 'MCL0301' || d.message.includes('app.conf')).length).toBeGreaterThan(0);
    // Reported again on the next compile, too: a program that reported a problem is not kept.
    expect(inc.compile(new MemoryHost(gone), options).diagnostics).toEqual(b.diagnostics);
  });

  test('a taken-over instance whose ports gain a channel from an edited module is built again', () => {
    const w = generated(2);
    const main = (wired: boolean) =>
      [
        `component Probe {`,
        `  memory 96MiB`,
        `  require a: mods.m0.Api0 optional`,
        `  program { exec ["/bin/true"] }`,
        `}`,
        `system Main {`,
        `  s0 = mods.m0.Sys0`,
        `  s1 = mods.m1.Sys1`,
        `  probe = Probe`,
        wired ? `  connect probe.a -> s0.api` : '',
        `}`,
        `target big {`,
        `  backend kvm`,
        `  memory 64GiB`,
        `  vcpus 64`,
        `}`,
        `deploy Main to big`,
        '',
      ].join('\n');
    const inc = new IncrementalCompiler();
    const options: CompileOptions = { entries: ['main.mcl'], mclcVersion: 't', index: true };
    for (const wired of [false, true, false]) {
      const files = { ...w.files, 'main.mcl': main(wired) };
      const got = inc.compile(new MemoryHost(files), options);
      const want = compile(new MemoryHost(files), options);
      expect(got.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      expect(canonicalJson(got.plan!)).toEqual(canonicalJson(want.plan!));
      expect(got.plan!.instances.find((i) => i.id === 's0.c1')!.ports.find((p) => p.name === 'api')!.channels.length).toBe(wired ? 1 : 0);
    }
    // m0 and m1 were taken over: only the ports told the body that s0.c1 changed.
    expect(inc.stats.reused).toBeGreaterThan(2);
  });

  test('a compile stopped by an error keeps the plan objects for the next one and still reports what the plan body reports', () => {
    const w = generated(3, true);
    const inc = new IncrementalCompiler();
    const options: CompileOptions = { entries: [w.entry], mclcVersion: 't', index: true };
    const first = inc.compile(new MemoryHost(w.files), options);
    expect(first.plan).toBeDefined();
    const objects = inc.stats.planObjectsBuilt;
    // An error in a module the root depends on stops the plan and the policy checks: the body then
    // only reports (a program file that is gone), and builds and keeps nothing.
    const broken: Record<string, string> = { ...w.files, 'mods/m2.mcl': w.files['mods/m2.mcl'].replace('provide kv: Kv', 'provide kv: Kvx') };
    delete broken['conf/app.conf'];
    const stopped = inc.compile(new MemoryHost(broken), options);
    expect(stopped.diagnostics).toEqual(compile(new MemoryHost(broken), options).diagnostics);
    expect(stopped.diagnostics.filter((d) => d.code === 'MCL0702' && d.message.includes('app.conf')).length).toBeGreaterThan(0);
    expect(inc.stats.planObjectsBuilt + inc.stats.planObjectsReused).toBe(0);
    // Fixed again: the objects kept before the stopped compile are taken over, except m2's three
    // instances and two channels and the two other instances whose program read the file that was gone.
    const fixed = inc.compile(new MemoryHost(w.files), options);
    expect(canonicalJson(fixed.plan!)).toEqual(canonicalJson(compile(new MemoryHost(w.files), options).plan!));
    expect(inc.stats.planObjectsBuilt).toBe(7);
    expect(inc.stats.planObjectsReused).toBe(objects - 7);
    expect(fixed.plan!.instances.find((i) => i.id === 's0.c0')).toBe(first.plan!.instances.find((i) => i.id === 's0.c0'));
  });

  test('a first compile stopped by an error builds the body all the same, so that the next compile takes its subtrees over as blocks', () => {
    // The language server's first build meets the file being edited, often broken: the compile after
    // it must not build the whole plan body.
    const w = generated(4, true);
    const broken = { ...w.files, 'mods/m2.mcl': w.files['mods/m2.mcl'].replace('provide kv: Kv', 'provide kv: Kvx') };
    for (const emitPlan of [true, false]) {
      const options: CompileOptions = { entries: [w.entry], mclcVersion: 't', index: true, emitPlan };
      const inc = new IncrementalCompiler();
      const first = inc.compile(new MemoryHost(broken), options);
      expect(observable(first)).toEqual(observable(compile(new MemoryHost(broken), options)));
      expect(first.diagnostics.some((d) => d.severity === 'error')).toBe(true);
      // Each module's system has three instances and two channels: all twenty objects were built.
      expect(inc.stats.planObjectsBuilt).toBe(20);
      const fixed = inc.compile(new MemoryHost(w.files), options);
      expect(observable(fixed)).toEqual(observable(compile(new MemoryHost(w.files), options)));
      if (emitPlan) expect(fixed.plan).toBeDefined();
      // The subsystems of m0 and m1, which the edit left alone, are taken over whole; the objects of
      // m2 and of m3, which imports it, are built again.
      expect(inc.stats.planBlocksReused).toBe(2);
      expect(inc.stats.planObjectsReused).toBe(10);
      expect(inc.stats.planObjectsBuilt).toBe(10);
      // Broken again and fixed again: the same, from the fixed compile's body.
      expect(observable(inc.compile(new MemoryHost(broken), options))).toEqual(observable(compile(new MemoryHost(broken), options)));
      expect(observable(inc.compile(new MemoryHost(w.files), options))).toEqual(observable(compile(new MemoryHost(w.files), options)));
      expect(inc.stats.planBlocksReused).toBe(2);
    }
  });

  test('a checking-only compile builds no message schemas and keeps those built for the next plan', () => {
    const w = generated(3);
    const inc = new IncrementalCompiler();
    const options: CompileOptions = { entries: [w.entry], mclcVersion: 't', index: true };
    const first = inc.compile(new MemoryHost(w.files), options);
    const edited = { ...w.files, 'mods/m2.mcl': w.files['mods/m2.mcl'].replace('level = 2', 'level = 3') };
    const checking = inc.compile(new MemoryHost(edited), { ...options, emitPlan: false });
    expect(checking.diagnostics).toEqual(compile(new MemoryHost(edited), { ...options, emitPlan: false }).diagnostics);
    const planned = inc.compile(new MemoryHost(w.files), options);
    expect(canonicalJson(planned.plan!)).toEqual(canonicalJson(compile(new MemoryHost(w.files), options).plan!));
    expect(planned.plan!.schemas['mods.m0.Req0']).toBe(first.plan!.schemas['mods.m0.Req0']);
  });

  test('the references of a result read after later compiles are those of its own sources', () => {
    const w = generated(4);
    const inc = new IncrementalCompiler();
    const options: CompileOptions = { entries: [w.entry], mclcVersion: 't', index: true };
    inc.compile(new MemoryHost(w.files), options);
    const texts = [
      { ...w.files, 'mods/m3.mcl': w.files['mods/m3.mcl'].replace('level = 2', 'level = 3') },
      { ...w.files, 'mods/m1.mcl': w.files['mods/m1.mcl'].replace('Req1', 'Rq1') },
      w.files,
    ];
    // Taken-over references are joined only when read: read each result only after all the compiles.
    const results = texts.map((files) => inc.compile(new MemoryHost(files), options));
    expect(inc.stats.reused).toBeGreaterThan(0);
    texts.forEach((files, i) => {
      const want = compile(new MemoryHost(files), options).program.references;
      const got = results[i].program.references;
      expect(got.length).toBe(want.length);
      expect(observable(results[i]).references).toEqual(observable(compile(new MemoryHost(files), options)).references);
      // Read twice, the same list.
      expect(results[i].program.references).toBe(got);
    });
  });

  test('the instance settings taken over in place lose those of an edited module and follow its new ones', () => {
    const w = generated(3);
    const inc = new IncrementalCompiler();
    const options: CompileOptions = { entries: [w.entry], mclcVersion: 't', index: true };
    const first = inc.compile(new MemoryHost(w.files), options);
    const before = first.program.instances.size;
    // An instance renamed and another resized in m1: its old entry goes, the new ones come.
    const edited: Record<string, string> = { ...w.files, 'mods/m1.mcl': w.files['mods/m1.mcl'].replace('  c1 = C1_1', '  c9 = C1_1').replace('c1.next', 'c9.next').replace('export api = c1.api', 'export api = c9.api').replace('memory 96MiB', 'memory 128MiB') };
    const second = inc.compile(new MemoryHost(edited), options);
    expect(second.program.instances).toBe(first.program.instances);
    expect(second.program.instances.size).toBe(before);
    expect(observable(second).instances).toEqual(observable(compile(new MemoryHost(edited), options)).instances);
    expect([...second.program.instances.keys()].some((id) => id.includes('Sys1.c1'))).toBe(false);
    // Back again, and an instance added to main: the same as a full compile each time.
    const added: Record<string, string> = { ...w.files, 'main.mcl': w.files['main.mcl'].replace('  s0 = mods.m0.Sys0', '  s0 = mods.m0.Sys0\n  extra = mods.m2.Store2') };
    for (const files of [w.files, added]) {
      const got = inc.compile(new MemoryHost(files), options);
      expect(observable(got).instances).toEqual(observable(compile(new MemoryHost(files), options)).instances);
    }
  });

  test('what the capability check finds in a subtree taken over is reported again, whichever subtree reported it first', () => {
    const w = unrealisable();
    const files = w.files;
    const inc = new IncrementalCompiler();
    const options: CompileOptions = { entries: [w.entry], mclcVersion: 't', index: true };
    const first = inc.compile(new MemoryHost(files), options);
    const codes = first.diagnostics.filter((d) => d.code === Codes.BackendCannotRealise.code);
    expect(codes.map((d) => d.file).sort()).toEqual(['mods/img.mcl', 'mods/img.mcl', 'mods/m3.mcl']);
    // m2 edited (main declares labels, so an edit to it takes nothing over): m0's and m1's subtrees are
    // taken over, and what was found in them is reported again. The image and the wide component are
    // reported at their first instance in flat order, which is in m2's subtree: m1's and m0's count as
    // found in all the same.
    const moved = { ...files, 'mods/m2.mcl': files['mods/m2.mcl'].replace('\nsystem Sys2', '\n\n\nsystem Sys2') };
    // m2 no longer uses the image or the wide component: m1's and m0's subtrees, taken over, still do.
    const dropped = { ...files, 'mods/m2.mcl': files['mods/m2.mcl'].replace('\n  image mods.img.mine', '').replace('\n  wide = mods.img.Wide', '') };
    for (const step of [moved, dropped, files, moved]) {
      const got = inc.compile(new MemoryHost(step), options);
      expect(inc.stats.subtreesReused).toBeGreaterThan(0);
      expect(got.diagnostics).toEqual(compile(new MemoryHost(step), options).diagnostics);
      expect(got.diagnostics.filter((d) => d.code === Codes.BackendCannotRealise.code).length).toBe(3);
    }
  });

  test('a system taken over that was checked with an argument of an edited module is checked with what it writes now', () => {
    // Checks are kept by where their arguments are written: P's check with m1's `n = 2` must not stand for `n = 0`
    // (a plan with the old value) or `n = 7` (out of range for the component, an error).
    const lib = `component Leveled {\n  memory 96MiB\n  param level: int(0..2) = 1\n  program { exec ["/bin/true"] }\n}\nsystem P {\n  param n: int(0..9) = 1\n  c = Leveled { level = n }\n}\n`;
    const workspace = (n: number): Record<string, string> => ({ 'mods/lib.mcl': lib, 'mods/m1.mcl': `system Sys1 {\n  p = mods.lib.P { n = ${n} }\n}\n`, 'main.mcl': `system Main {\n  s = mods.m1.Sys1\n}\ndeploy Main to local\n` });
    const inc = new IncrementalCompiler();
    const options: CompileOptions = { entries: ['main.mcl'], mclcVersion: 't', index: true };
    for (const n of [2, 0, 7, 2]) {
      const got = inc.compile(new MemoryHost(workspace(n)), options);
      expect(observable(got)).toEqual(observable(compile(new MemoryHost(workspace(n)), options)));
      if (n === 0) expect(got.plan!.instances.find((i) => i.id === 's.p.c')!.params).toEqual({ level: 0 });
      if (n === 7) expect(got.diagnostics.map((d) => d.code)).toEqual([Codes.ConstraintViolated.code]);
    }
  });

  test('a module with diagnostics is checked again, so its messages follow the workspace', () => {
    const w = generated(2);
    const broken: Record<string, string> = { ...w.files, 'mods/m1.mcl': w.files['mods/m1.mcl'].replace('provide kv: Kv', 'provide kv: Kvv') };
    const inc = new IncrementalCompiler();
    const options: CompileOptions = { entries: [w.entry], mclcVersion: 't', index: true };
    const a = inc.compile(new MemoryHost(broken), options);
    expect(a.diagnostics.some((d) => d.file === 'mods/m1.mcl')).toBe(true);
    // A type named like the unknown one appears in another module: the hint may now name it.
    const next = { ...broken, 'mods/m0.mcl': broken['mods/m0.mcl'] + '\ntype Kvv = int\n' };
    expect(inc.compile(new MemoryHost(next), options).diagnostics).toEqual(compile(new MemoryHost(next), options).diagnostics);
  });

  describe('policy checks taken over', () => {
    const options: CompileOptions = { entries: ['main.mcl'], mclcVersion: 't', index: true };
    const edit = (files: Record<string, string>, file: string, from: string, to: string) => {
      expect(files[file]).toContain(from);
      return { ...files, [file]: files[file].replace(from, to) };
    };
    /** Compiles `next` after `files` incrementally, checks it equals a full compile, and returns it with whether the policy result was taken over. */
    const step = (inc: IncrementalCompiler, files: Record<string, string>) => {
      const got = inc.compile(new MemoryHost(files), options);
      const want = compile(new MemoryHost(files), options);
      expect(observable(got)).toEqual(observable(want));
      return { got, reused: inc.stats.policiesReused === 1 };
    };

    test('an edit the checks do not read takes the result over; one they read checks again', () => {
      const w = generated(3);
      const inc = new IncrementalCompiler();
      expect(step(inc, w.files).reused).toBe(false);
      // A parameter value and a comment: nothing the checks read.
      const param = edit(w.files, 'mods/m1.mcl', 'level = 2', 'level = 7');
      expect(step(inc, param).reused).toBe(true);
      const comment = edit(param, 'mods/m1.mcl', '\nsystem Sys1', '\n// the system\nsystem Sys1');
      expect(step(inc, comment).reused).toBe(true);
      // A rule: now violated.
      const rule = edit(comment, 'mods/m1.mcl', 'store only from c0', 'store only from c1');
      const violated = step(inc, rule);
      expect(violated.reused).toBe(false);
      expect(violated.got.diagnostics.some((d) => d.code === 'MCL0501')).toBe(true);
      // Memory: the resource estimate changes.
      const memory = edit(w.files, 'mods/m2.mcl', 'memory 96MiB', 'memory 1GiB');
      const bigger = step(inc, memory);
      expect(bigger.reused).toBe(false);
      // Wiring: a channel's allow-list.
      const allow = edit(memory, 'mods/m2.mcl', 'allow get;', 'allow note;');
      expect(step(inc, allow).reused).toBe(false);
      // A label.
      const label = edit(allow, 'mods/m2.mcl', 'component Store2 {\n', 'component Store2 {\n  label secret\n');
      expect(step(inc, label).reused).toBe(false);
      // Back to an input seen before, but not the last one: checked again.
      expect(step(inc, allow).reused).toBe(false);
      expect(step(inc, allow).reused).toBe(true);
    });

    test('a violation taken over is placed where its rule, instances and channels are now', () => {
      const w = generated(3);
      const violated = edit(w.files, 'mods/m1.mcl', 'store only from c0', 'store only from c1');
      const inc = new IncrementalCompiler();
      const first = step(inc, violated).got;
      const violation = first.diagnostics.find((d) => d.code === 'MCL0501')!;
      expect(violation.related?.length).toBeGreaterThan(0);
      // Lines inserted above the rule and the channel it names: same meaning, every location moved.
      const moved = edit(violated, 'mods/m1.mcl', '\nsystem Sys1', '\n\n\n\nsystem Sys1');
      const second = step(inc, moved);
      expect(second.reused).toBe(false);
      expect(second.got.diagnostics.find((d) => d.code === 'MCL0501')!.span.start).toBe(violation.span.start + 3);
      // Only the rule moves (the instances and the channel it names are declared above): checked again.
      const ruleMoved = edit(moved, 'mods/m1.mcl', '  export api = c1.api\n', '  export api = c1.api\n\n');
      const fourth = step(inc, ruleMoved);
      expect(fourth.reused).toBe(false);
      expect(fourth.got.diagnostics.find((d) => d.code === 'MCL0501')!.span.start).toBe(violation.span.start + 4);
      step(inc, moved);
      // Nothing moved: taken over, with the same diagnostics.
      const third = step(inc, moved);
      expect(third.reused).toBe(true);
      expect(third.got.diagnostics).toEqual(second.got.diagnostics);
      // An edit in another file that moves nothing the violation names (nor any rule): taken over.
      expect(step(inc, { ...moved, 'main.mcl': `${moved['main.mcl']}\n// the end\n` }).reused).toBe(true);
      // One that moves a rule in a file no diagnostic names: taken over (a rule's place is only
      // reported in its own file).
      const elsewhere = step(inc, edit(moved, 'mods/m0.mcl', '\nsystem Sys0', '\n\n\nsystem Sys0'));
      expect(elsewhere.reused).toBe(true);
      expect(elsewhere.got.diagnostics).toEqual(second.got.diagnostics);
    });

    test('a label order cycle taken over is placed where the labels are declared now', () => {
      const w = generated(2);
      // Declared last, so that moving them moves nothing else.
      const cyclic = { ...w.files, 'main.mcl': `${w.files['main.mcl']}\nlabels { la < lb }\nlabels { lb < la }\n` };
      const inc = new IncrementalCompiler();
      const first = step(inc, cyclic).got;
      const cycle = first.diagnostics.find((d) => d.code === 'MCL0506');
      expect(cycle).toBeDefined();
      // The declarations move down a line; nothing else the checks read changes.
      const moved = edit(cyclic, 'main.mcl', '\nlabels { la < lb }', '\n\nlabels { la < lb }');
      const second = step(inc, moved);
      expect(second.reused).toBe(false);
      expect(second.got.diagnostics.find((d) => d.code === 'MCL0506')!.span.start).toBe(cycle!.span.start + 1);
      expect(step(inc, moved).reused).toBe(true);
    });

    test('a violation whose related location is in another file follows it there', () => {
      const w = generated(2);
      // Main wires a probe into s0's store: `store only from c0` in m0 names main.mcl's channel and instance.
      const main = (pad: string) =>
        [
          `labels { public < internal < secret }`,
          `component Probe {`,
          `  memory 96MiB`,
          `  require kv: std.kv.Kv`,
          `  program { exec ["/bin/true"] }`,
          `}`,
          `system Main {`,
          `  s0 = mods.m0.Sys0`,
          `  s1 = mods.m1.Sys1`,
          pad,
          `  probe = Probe`,
          `  connect probe.kv -> s0.store`,
          `}`,
          `target big {`,
          `  backend kvm`,
          `  memory 64GiB`,
          `  vcpus 64`,
          `}`,
          `deploy Main to big`,
          '',
        ].join('\n');
      const exported = (files: Record<string, string>) => edit(files, 'mods/m0.mcl', '  export api = c1.api', '  export api = c1.api\n  export store = store.kv');
      const a = exported({ ...w.files, 'main.mcl': main('') });
      const b = exported({ ...w.files, 'main.mcl': main('  // moved\n') });
      const inc = new IncrementalCompiler();
      const first = step(inc, a).got;
      const violation = first.diagnostics.find((d) => d.code === 'MCL0501' && d.file === 'mods/m0.mcl');
      expect(violation?.related?.some((r) => r.file === 'main.mcl')).toBe(true);
      // Only main.mcl moved, and only its lines after the pad: the rule in m0 is where it was.
      const second = step(inc, b);
      expect(second.reused).toBe(false);
      const moved = second.got.diagnostics.find((d) => d.code === 'MCL0501' && d.file === 'mods/m0.mcl')!;
      expect(moved.span).toEqual(violation!.span);
      expect(moved.related).not.toEqual(violation!.related);
    });

    test('the checks of a first build stopped by an error are kept, not reported, and taken over by the compile that fixes it', () => {
      const w = generated(3);
      // An error the composition does not read (a type nothing uses) stops the root's checks, with a violation behind it.
      const violated = edit(w.files, 'mods/m1.mcl', 'store only from c0', 'store only from c1');
      const broken = edit(violated, 'mods/m1.mcl', '\nsystem Sys1', '\ntype Unused = Absent\n\nsystem Sys1');
      const inc = new IncrementalCompiler();
      const first = step(inc, broken);
      expect(first.got.diagnostics.some((d) => d.severity === 'error' && !d.code.startsWith('MCL05'))).toBe(true);
      expect(first.got.diagnostics.some((d) => d.code.startsWith('MCL05'))).toBe(false);
      expect(inc.stats.policiesChecked).toBe(1);
      // Fixed, in as many characters: the same composition and locations, so the kept result is taken over.
      const fixed = step(inc, edit(broken, 'mods/m1.mcl', 'type Unused = Absent', 'type Unused = string'));
      expect(fixed.reused).toBe(true);
      expect(fixed.got.diagnostics.some((d) => d.code === 'MCL0501')).toBe(true);
      // The same, from a first build whose error changes the composition (a port's protocol unknown): checked again.
      const inc2 = new IncrementalCompiler();
      step(inc2, edit(violated, 'mods/m1.mcl', 'provide kv: Kv', 'provide kv: Kvx'));
      const again = step(inc2, violated);
      expect(again.reused).toBe(false);
      expect(again.got.diagnostics.some((d) => d.code === 'MCL0501')).toBe(true);
      // Only the first body is built whole: a later stopped compile neither runs the checks nor drops their last result.
      step(inc2, broken);
      expect(inc2.stats.policiesChecked).toBe(0);
      expect(step(inc2, violated).reused).toBe(true);
    });
  });

  describe('subtrees taken over as blocks by the plan body', () => {
    const options: CompileOptions = { entries: ['main.mcl'], mclcVersion: 't', index: true };
    /** Main instantiates three modules' systems and a probe; each switch changes what reaches the subsystems from outside. */
    const main = (o: { wired?: boolean; exposed?: boolean; wide?: boolean; pad?: boolean }) =>
      [
        `component Probe {`,
        `  memory 96MiB`,
        `  require a: mods.m0.Api0 optional`,
        // More ports than any component of the modules: the template they share gets more slots.
        ...(o.wide ? [1, 2, 3, 4, 5].map((i) => `  require w${i}: mods.m0.Api0 optional`) : []),
        `  program { exec ["/bin/true"] }`,
        `}`,
        o.pad ? `\n\n` : '',
        `system Main {`,
        `  s0 = mods.m0.Sys0`,
        `  s1 = mods.m1.Sys1`,
        `  s2 = mods.m2.Sys2`,
        `  probe = Probe`,
        o.wired ? `  connect probe.a -> s0.api` : '',
        o.exposed ? `  expose s1.api on tcp 8080` : '',
        `}`,
        `target big {`,
        `  backend kvm`,
        `  memory 64GiB`,
        `  vcpus 64`,
        `}`,
        `deploy Main to big`,
        '',
      ].join('\n');
    const steps: { name: string; o: Parameters<typeof main>[0]; m1?: (t: string) => string }[] = [
      { name: 'start', o: {} },
      { name: 'main moved', o: { pad: true } },
      { name: 'a channel from outside into s0', o: { pad: true, wired: true } },
      { name: 'main moved back', o: { wired: true } },
      { name: 'the channel gone', o: {} },
      { name: 'an exposure from outside onto s1', o: { exposed: true } },
      { name: 'the exposure gone', o: { pad: true } },
      { name: 'a template with more slots', o: { wide: true } },
      { name: 'main moved, wide', o: { wide: true, pad: true } },
      { name: 'the template as it was', o: {} },
      { name: 'm1 edited', o: {}, m1: (t) => t.replace('level = 2', 'level = 3') },
      { name: 'm1 and main edited', o: { wired: true }, m1: (t) => t.replace('level = 2', 'level = 4') },
    ];

    test('each edit gives the plan and diagnostics of a full compile, taking unchanged subtrees over whole', () => {
      const w = generated(3, true);
      const inc = new IncrementalCompiler();
      let blocks = 0;
      let last: CompileResult | undefined;
      for (const s of steps) {
        const files = { ...w.files, 'main.mcl': main(s.o), ...(s.m1 ? { 'mods/m1.mcl': s.m1(w.files['mods/m1.mcl']) } : {}) };
        const got = inc.compile(new MemoryHost(files), options);
        const want = compile(new MemoryHost(files), options);
        expect(got.diagnostics.filter((d) => d.severity === 'error'), s.name).toEqual([]);
        expect(observable(got), s.name).toEqual(observable(want));
        blocks += inc.stats.planBlocksReused;
        if (s.name === 'main moved') {
          // Only Main was flattened again: the three subsystems' objects are the very same ones.
          expect(inc.stats.planBlocksReused).toBe(3);
          for (const id of ['s0.c0', 's1.c1', 's2.store']) expect(got.plan!.instances.find((i) => i.id === id)).toBe(last!.plan!.instances.find((i) => i.id === id));
        }
        if (s.name === 'a channel from outside into s0') {
          // s0 is reached from outside: its objects are compared one by one, and s0.c1 built again.
          expect(inc.stats.planBlocksReused).toBe(2);
          expect(got.plan!.instances.find((i) => i.id === 's0.c1')).not.toBe(last!.plan!.instances.find((i) => i.id === 's0.c1'));
          expect(got.plan!.instances.find((i) => i.id === 's0.c0')).toBe(last!.plan!.instances.find((i) => i.id === 's0.c0'));
        }
        if (s.name === 'a template with more slots') expect(inc.stats.planBlocksReused).toBe(0);
        last = got;
      }
      expect(blocks).toBeGreaterThan(10);
    });

    test('a program file read by a subtree taken over changes its block', () => {
      const w = generated(3, true);
      const inc = new IncrementalCompiler();
      const texts = ['echo changed\n', 'echo one\n', 'echo changed\n'];
      for (const t of texts) {
        const files = { ...w.files, 'main.mcl': main({}), 'mods/run1.sh': t };
        const got = inc.compile(new MemoryHost(files), options);
        expect(observable(got)).toEqual(observable(compile(new MemoryHost(files), options)));
        expect(got.plan!.instances.find((i) => i.id === 's1.c1')!.program.files.find((f) => f.path === '/mcl/program/run1.sh')!.content).toBe(t);
      }
    });

    test('a policy violation in a subtree taken over is placed where its objects are, with the last lists updated', () => {
      const w = violated();
      const inc = new IncrementalCompiler();
      for (const o of [{}, { pad: true }, { wired: true }, { pad: true, wired: true }, {}]) {
        const files = { ...w.files, 'main.mcl': main(o) };
        const got = inc.compile(new MemoryHost(files), { ...options, emitPlan: false });
        const want = compile(new MemoryHost(files), { ...options, emitPlan: false });
        expect(got.diagnostics.some((d) => d.code.startsWith('MCL05'))).toBe(true);
        expect(got.diagnostics).toEqual(want.diagnostics);
      }
    });
    test('a checking-only compile leaves blocks without digests, which a plan does not take over', () => {
      const w = generated(3, true);
      const inc = new IncrementalCompiler();
      const a = { ...w.files, 'main.mcl': main({}) };
      const b = { ...w.files, 'main.mcl': main({ pad: true }) };
      inc.compile(new MemoryHost(a), { ...options, emitPlan: false });
      const got = inc.compile(new MemoryHost(b), options);
      expect(canonicalJson(got.plan!)).toEqual(canonicalJson(compile(new MemoryHost(b), options).plan!));
      expect(got.plan!.instances.every((i) => i.digest !== '')).toBe(true);
    });

    // The language reports both in a module (which is then checked again, so that no subtree depending
    // on it is taken over): these compare with a full compile whatever the body takes over.
    test('a channel or an image from outside that a subtree also has is counted as a full compile counts it', () => {
      const w = generated(3, true);
      // m0 exports both ends of its own channel `c1.next -> c0.api`, so that Main can make the same one.
      const m0 = w.files['mods/m0.mcl'].replace('  export api = c1.api', '  export api = c1.api\n  export next = c1.next\n  export back = c0.api');
      const inc = new IncrementalCompiler();
      const variants = [
        main({}),
        main({}).replace('  probe = Probe', '  probe = Probe\n  connect s0.next -> s0.back'),
        main({}),
        // Another image named like the prelude's, used by the probe (which comes first): every other instance reports it.
        main({}).replace('component Probe {', 'image busybox {\n  base "busybox-static"\n  kernel "debian-cloud"\n  modules []\n}\ncomponent Probe {\n  image busybox'),
        main({}),
      ];
      for (const text of variants) {
        const files = { ...w.files, 'mods/m0.mcl': m0, 'main.mcl': text };
        const got = inc.compile(new MemoryHost(files), options);
        expect(observable(got)).toEqual(observable(compile(new MemoryHost(files), options)));
      }
    });
  });
});
