// One focused case per diagnostic code of the compiler core: each source
// triggers the code, and the test checks where it points and (for some) the
// hint or fix. A final test checks that every registered code has a case.

import { describe, expect, test } from 'vitest';
import type { CompileOptions } from '../src/api';
import { Codes, diagnosticInfos } from '@mcl/language';
import { Ctx } from '../src/context';
import { compileText } from './helpers';

/** The codes of the compiler core (the policy checker's MCL05xx have their own tests). */
const COMPILER_CODES = diagnosticInfos.filter((i) => ['resolve', 'type', 'compose', 'target', 'plan'].includes(i.stage));

interface Case {
  code: string;
  main?: string;
  files?: Record<string, string>;
  opts?: Partial<CompileOptions>;
  /** Text the diagnostic's span must cover in main.mcl (or the file named by `file`). */
  at?: string;
  file?: string;
  hint?: RegExp;
  message?: RegExp;
  fix?: string;
}

const KV = 'import std.kv.{Kv}\n';
/** A component with a byte-stream port and an HTTP port (the egress cases). */
const EG = 'import std.tcp.{Stream}\nimport std.http.{Http}\ncomponent Mailer { require smtp: Stream\n require api: Http }\n';
/** A protocol and the component a factory creates (the factory cases). */
const JOBS = 'protocol Jobs { call run(string) -> string }\ncomponent Worker { provide jobs: Jobs }\n';
const comp = (body: string) => `component C {\n${body}\n}\n`;

const ARR = KV + 'component R { require shards: Kv[2] }\ncomponent S { provide kv: Kv }\n';
const CASES: Case[] = [
  // Port arrays: the element checks the compiler makes (the syntax checks are in language/test and spec/diagnostics.md).
  { code: 'MCL0143', main: ARR + 'system T { r = R\n a = S\n connect r.shards[2] -> a.kv }\n', at: '[2]', hint: /0 to 1/ },
  { code: 'MCL0144', main: ARR + 'system T { r = R\n a = S\n connect r.shards[*] -> [a.kv, a.kv[0]] }\n', at: '[0]' },
  { code: 'MCL0145', main: ARR + 'system T { r = R\n a = S\n connect r.shards -> a.kv }\n', at: 'shards', hint: /\[\*\]/ },
  { code: 'MCL0146', main: KV + 'component P { provide kv: Kv[2] }\n', at: '2' },
  { code: 'MCL0147', main: ARR + 'system T { r = R\n a = S\n connect r.shards[*] -> [a.kv] }\n', at: 'a.kv', message: /2 elements but the list names 1/ },
  { code: 'MCL0201', main: 'import std.htp.{Http}\n', at: 'std.htp', hint: /std\.http/ },
  { code: 'MCL0202', main: 'import std.kv.{Kvv}\n', at: 'Kvv', hint: /`Kv`/ },
  { code: 'MCL0203', main: 'type A = { b: Bee }\ntype Be = int\n', at: 'Bee', hint: /`Be`/ },
  {
    code: 'MCL0204',
    main: 'import a.*\nimport b.*\ntype T = { x: X }\n',
    files: { 'a.mcl': 'type X = int\n', 'b.mcl': 'type X = string\n' },
    at: 'X',
    message: /ambiguous/,
  },
  { code: 'MCL0205', main: 'type A = int\ntype A = string\n', at: 'A', message: /declared twice/ },
  { code: 'MCL0206', main: 'import main.{A}\ntype A = int\n', at: 'main', message: /main -> main/ },
  { code: 'MCL0207', opts: { entries: ['../outside.mcl'] }, main: '', message: /outside the workspace/ },
  { code: 'MCL0208', main: KV + 'type T = { k: Kv }\n', at: 'Kv', message: /is a protocol, not a type/ },
  { code: 'MCL0209', main: 'import std.kv.{Kv}\nprotocol Kv { send x() }\n', at: 'Kv', message: /conflicts/ },
  { code: 'MCL0210', main: comp('label secrte'), at: 'secrte', hint: /`secret`/ },
  { code: 'MCL0211', opts: { entries: ['nope.mcl'] }, main: '', message: /does not exist/ },
  { code: 'MCL0212', main: 'import std.kv.{Kv}\nimport std.http.{Http}\ncomponent C { provide h: Http }\n', at: 'import std.kv.{Kv}', fix: 'import std.http.{Http}\ncomponent' },
  { code: 'MCL0301', main: 'type T = bool(max 3)\n', at: 'max 3' },
  { code: 'MCL0302', main: 'type T = int(10..1)\n', at: '10..1', hint: /1\.\.10/ },
  { code: 'MCL0303', main: 'type T = string(max 1.5)\n', at: '1.5' },
  { code: 'MCL0304', main: 'type T = string(pattern "(")\n', at: '"("' },
  { code: 'MCL0305', main: 'type T = { a: int, a: string }\n', message: /field `a`/ },
  { code: 'MCL0306', main: 'type T = union { a, a }\n', message: /variant `a`/ },
  { code: 'MCL0307', main: 'type T = enum { a, a }\n', message: /member `a`/ },
  { code: 'MCL0308', main: 'type T = { next: T }\n', at: 'T', hint: /optional/ },
  { code: 'MCL0309', main: 'protocol P { send a()\n send a() }\n', message: /operation `a`/ },
  { code: 'MCL0310', main: 'protocol P { send open()\n send close()\n order open clos }\n', at: 'clos', hint: /`close`/ },
  { code: 'MCL0311', main: comp('param n: int = "x"'), at: '"x"' },
  { code: 'MCL0312', main: comp('param n: int(1..5) = 9'), at: '9', message: /in 1\.\.5/ },
  { code: 'MCL0313', main: 'type M = enum { fast, safe }\n' + comp('param m: M = fsat'), at: 'fsat', hint: /`fast`/ },
  { code: 'MCL0314', main: comp('param size: int = 1') + 'system S { c = C { sise = 2 } }\n', at: 'sise', hint: /`size`/ },
  { code: 'MCL0315', main: comp('param size: int') + 'system S { c = C }\n', at: 'c', message: /required parameter `size`/ },
  { code: 'MCL0316', main: comp('param a: int = 1\nparam a: int = 2'), message: /parameter `a`/ },
  { code: 'MCL0317', main: 'type T = string(max 3, max 4)\n', at: 'max 4' },
  { code: 'MCL0318', main: 'type T = enum { }\n', message: /at least one member/ },
  { code: 'MCL0319', main: 'type T = map<int, string>\n', at: 'int' },
  // (a|b)* a (a|b){12}: the classic regular expression whose deterministic automaton needs 2^13 states.
  { code: 'MCL0320', main: `protocol P { send a()\n send b()\n order (a | b)* a ${'(a | b) '.repeat(12)} }\n`, message: /too complex/ },
  { code: 'MCL0401', main: KV + comp('require k: Kv') + 'system S { c = C\n connect c.k -> dd.kv }\n', at: 'dd' },
  { code: 'MCL0402', main: KV + comp('require k: Kv') + 'component D { provide kv: Kv }\nsystem S { c = C\n d = D\n connect c.k -> d.kw }\n', at: 'kw', hint: /`kv`/ },
  {
    code: 'MCL0403',
    main: KV + comp('require k: Kv') + 'component D { provide kv: Kv }\nsystem S { c = C\n d = D\n connect d.kv -> c.k }\n',
    hint: /swapped\? write `connect c\.k -> d\.kv`/,
    fix: 'connect c.k -> d.kv',
  },
  {
    code: 'MCL0404',
    main: KV + 'import std.log.{Logs}\n' + comp('require k: Kv') + 'component D { provide l: Logs }\nsystem S { c = C\n d = D\n connect c.k -> d.l }\n',
    message: /requires `std\.kv\.Kv` but `d\.l` provides `std\.log\.Logs`/,
  },
  {
    code: 'MCL0405',
    main: KV + comp('require k: Kv') + 'component D { provide kv: Kv }\nsystem S { c = C\n d = D\n e = D\n connect c.k -> d.kv\n connect c.k -> e.kv }\n',
    message: /already connected/,
  },
  {
    code: 'MCL0406',
    main: KV + comp('require k: Kv') + 'component D { provide kv: Kv }\nsystem S {\n  c = C\n  d = D\n}\n',
    at: 'c',
    fix: 'connect c.k -> d.kv',
  },
  { code: 'MCL0407', main: KV + comp('require k: Kv') + 'component D { provide kv: Kv }\nsystem S { c = C\n d = D\n connect c.k -> d.kv { allow gett } }\n', at: 'gett', hint: /`get`/ },
  { code: 'MCL0408', main: KV + comp('require k: Kv optional') + 'system S { c = C\n expose c.k on tcp 8080 }\n', at: 'c.k' },
  {
    code: 'MCL0409',
    main: 'import std.http.{Http}\ncomponent W { expose a: Http on tcp 8080\n expose b: Http on tcp 8080 }\nsystem S { w = W }\n',
    message: /host port 8080 is exposed twice/,
  },
  { code: 'MCL0410', main: 'system S { s = S }\n', message: /contains itself: S -> S/ },
  { code: 'MCL0411', main: 'system S { a = C\n a = C }\n' + comp(''), message: /instance `a` is declared twice/ },
  { code: 'MCL0412', main: comp('vcpus 0'), at: '0' },
  { code: 'MCL0413', main: 'system Inner { }\nsystem S { i = Inner { replicas 2 } }\n', at: 'replicas 2' },
  { code: 'MCL0414', main: comp('memory 128MiB\nmemory 256MiB'), at: 'memory 256MiB' },
  { code: 'MCL0415', main: 'image img { colour "red" }\n', at: 'colour' },
  { code: 'MCL0416', main: KV + comp('require k: Kv') + 'component D { provide kv: Kv }\nsystem S { c = C\n d = D\n connect c.k -> d.kv { max_inflight 0 } }\n', at: '0' },
  { code: 'MCL0417', main: 'import std.http.{Http}\ncomponent W { expose a: Http on tcp 70000 }\n', at: '70000' },
  { code: 'MCL0418', main: comp('declassifies secret -> secret'), message: /itself/ },
  {
    code: 'MCL0419',
    main:
      'protocol F { send open(string)\n send write(string)\n order (open write*)* }\n' +
      comp('require f: F') +
      'component D { provide f: F }\nsystem S { c = C\n d = D\n connect c.f -> d.f { allow write } }\n',
    at: 'allow write',
    message: /never lets `write` through/,
  },
  {
    code: 'MCL0440',
    main: KV + comp('require k: Kv') + 'component D { provide kv: Kv }\nsystem S { c = C\n d = D\n connect c.k -> d.kv { max_connections 5 } }\n',
    at: 'max_connections 5',
  },
  {
    code: 'MCL0450',
    main: JOBS + 'component Coord { require workers: factory Worker }\nsystem S { c = Coord\n w = Worker { created by c.workers }\n connect c.workers -> w.jobs }\n',
    message: /has no bound/,
  },
  { code: 'MCL0451', main: JOBS + 'component Coord { require workers: factory Worker { max 4 } }\nsystem S { c = Coord }\n', message: /no instance of this system is created by it/ },
  {
    code: 'MCL0452',
    main: JOBS + 'component Store { provide jobs: Jobs }\ncomponent Coord { require workers: factory Worker { max 4 } }\nsystem S { c = Coord\n w = Store { created by c.workers }\n connect c.workers -> w.jobs }\n',
    message: /creates `main.Worker`, not `main.Store`/,
  },
  {
    code: 'MCL0453',
    main: JOBS + 'component Coord { require workers: factory Worker { max 4 } }\nsystem S { c = Coord\n w = Worker { created by c.workers }\n other = Worker\n connect c.workers -> other.jobs }\n',
    message: /its channels go to the instances it creates/,
  },
  {
    code: 'MCL0454',
    main: JOBS + 'component Coord { require workers: factory Worker { max 4 } }\nsystem S { c = Coord\n w = Worker { created by c.workers }\n v = Worker\n connect c.workers -> w.jobs | v.jobs }\n',
    message: /factory port: its channel goes to the instances it creates and cannot switch/,
  },
  {
    code: 'MCL0455',
    main: JOBS + 'component App { require jobs: Jobs }\nsystem S { a = App\n w = Worker\n v = Worker\n connect a.jobs -> w.jobs | v.jobs | w.jobs }\n',
    message: /`w.jobs` is named twice among the candidates of `a.jobs`/,
  },
  {
    code: 'MCL0530',
    main: KV + comp('require k: Kv') + 'component D { provide kv: Kv }\nsystem S { c = C\n d = D\n e = D\n connect c.k -> d.kv\n policy { c only to e } }\n',
    at: 'c only to e',
  },
  // Egress (spec/syntax.md, "Egress").
  { code: 'MCL0540', main: EG + 'system S { c = Mailer\n egress m: c.smtp -> "smtp.example.com"\n egress p: c.api -> "https://p.example.com" }\n', at: '"smtp.example.com"', hint: /scheme/ },
  { code: 'MCL0541', main: KV + 'component C { require k: Kv }\nsystem S { c = C\n egress m: c.k -> "tcp://kv.example.com:1" }\n', at: 'c.k' },
  { code: 'MCL0542', main: EG + 'system S { c = Mailer\n egress m: c.smtp -> "https://smtp.example.com"\n egress p: c.api -> "https://p.example.com" }\n', at: '"https://smtp.example.com"' },
  { code: 'MCL0543', main: EG + 'system S { c = Mailer\n egress c: c.smtp -> "tcp://s.example.com:25"\n egress p: c.api -> "https://p.example.com" }\n', at: 'c', message: /already the name/ },
  { code: 'MCL0544', main: 'import std.http.{Http}\ncomponent W { provide h: Http }\nsystem S { w = W\n egress o: w.h -> "https://o.example.com" }\n', at: 'w.h' },
  { code: 'MCL0545', main: EG + 'system S { c = Mailer\n egress m: c.smtp -> "tcp://s.example.com:25"\n egress p: c.api -> "https://p.example.com"\n policy { egress only [m] } }\n', at: 'egress only [m]' },
  { code: 'MCL0546', main: EG + 'system S { c = Mailer\n egress m: c.smtp -> "tcp://s.example.com:25"\n egress p: c.api -> "https://p.example.com"\n policy { egress only [m, q, p] } }\n', at: 'q' },
  {
    code: 'MCL0547',
    main: 'import std.tcp.{Stream}\nlabels { public < secret }\ncomponent R { label secret\n require s: Stream }\nsystem S { r = R\n egress m: r.s -> "tcp://s.example.com:25" }\n',
    at: 'egress m: r.s -> "tcp://s.example.com:25"',
    hint: /declassifies secret -> public on s/,
  },
  {
    code: 'MCL0601',
    main: 'component T { memory 64MiB }\nsystem S { t = T }\ntarget x { backend xen\n memory 8GiB\n vcpus 4 }\ndeploy S to x\n',
    at: 't',
    message: /backend `xen` boots in/,
  },
  { code: 'MCL0602', main: comp('') + 'system S { c = C }\ndeploy S to nowhere\n', at: 'nowhere' },
  { code: 'MCL0603', main: 'target t { backend kvm\n memory 1GiB\n vcpus 1\n colour 3 }\n', at: 'colour' },
  { code: 'MCL0604', main: comp('') + 'system A { c = C }\nsystem B { c = C }\n', message: /which system/ },
  { code: 'MCL0605', main: comp('') + 'system A { c = C }\ndeploy A\ndeploy A\n', message: /more than one/ },
  { code: 'MCL0606', main: 'type T = int\n', message: /no system/ },
  { code: 'MCL0610', main: 'component B { memory 3GiB }\nsystem A {\n  a = B\n  b = B { memory 3000MiB }\n  c = B { memory 3100MiB }\n}\ntarget n1 { backend kvm  memory 4GiB  vcpus 4  host "ssh://n1/s" }\ntarget n2 { backend kvm  memory 4GiB  vcpus 4  host "ssh://n2/s" }\ndeploy A to [n1, n2]\n', at: 'b = B { memory 3000MiB }', message: /fits on none of the targets: `n1` \(n1\) has/ },
  { code: 'MCL0611', main: comp('') + 'system A { c = C }\ntarget n1 { backend kvm  memory 4GiB  vcpus 4 }\ntarget n2 { backend xen  memory 4GiB  vcpus 4  host "ssh://n2" }\ndeploy A to [n1, n2]\n', at: 'n2', message: /uses backend `xen`/ },
  { code: 'MCL0612', main: comp('') + 'system A { c = C }\ntarget n1 { backend kvm  memory 4GiB  vcpus 4 }\ntarget n2 { backend kvm  memory 4GiB  vcpus 4 }\ndeploy A to [n1, n2]\n', message: /both deploy to the machine mclc runs on/ },
  { code: 'MCL0613', main: comp('') + 'system A { c = C }\ntarget n1 { backend kvm  memory 4GiB  vcpus 4  host "ssh://n1/s" }\ntarget n2 { backend kvm  memory 4GiB  vcpus 4  host "ssh://n2/s" }\ndeploy A to [n1, n2] {\n  place d on n1\n}\n', at: 'd', hint: /did you mean `c`/ },
  { code: 'MCL0614', main: comp('') + 'system A { c = C }\ntarget n1 { backend kvm  memory 4GiB  vcpus 4  host "ssh://n1/s" }\ntarget n2 { backend kvm  memory 4GiB  vcpus 4  host "ssh://n2/s" }\ndeploy A to [n1, n2] {\n  place c on n3\n}\n', at: 'n3' },
  { code: 'MCL0701', main: 'component C { program { script "../x.sh" } }\nsystem S { c = C }\n', at: '"../x.sh"' },
  { code: 'MCL0702', main: 'component C { program { script "x.sh" } }\nsystem S { c = C }\n', at: '"x.sh"' },
  { code: 'MCL0703', main: 'component C { program { exec ["/bin/a"]\n exec ["/bin/b"] } }\nsystem S { c = C }\n', message: /one `script` or one `exec`/ },
  { code: 'MCL0704', main: comp('') + 'system S { c = C }\n', opts: { exclude: ['nope'] }, message: /no instance `nope`/ },
  {
    code: 'MCL0705',
    main: KV + comp('require k: Kv') + 'component D { provide kv: Kv }\nsystem S { c = C\n d = D\n connect c.k -> d.kv }\n',
    opts: { exclude: ['d'] },
    message: /channel `c\.k->d\.kv` is left out/,
  },
  {
    code: 'MCL0706',
    main: 'import other.{C}\nimage busybox { base "busybox-static" }\ncomponent D { image busybox }\nsystem S { c = C\n d = D }\n',
    files: { 'other.mcl': 'image busybox { kernel "debian-cloud" }\ncomponent C { image busybox }\n' },
    message: /two different images/,
  },
  {
    code: 'MCL0799',
    // A parse cache that throws stands for any bug inside the pipeline: compile must turn it into a diagnostic.
    opts: {
      cache: {
        get: () => {
          throw new Error('boom');
        },
        set: () => {},
      },
    },
    main: 'type T = int\n',
    message: /internal compiler error: boom/,
  },
];

describe('diagnostic codes', () => {
  for (const c of CASES) {
    test(`${c.code}`, () => {
      const main = c.main ?? '';
      const r = compileText(main, c.files ?? {}, c.opts ?? {});
      const d = r.diagnostics.find((x) => x.code === c.code);
      expect(d, `expected ${c.code}, got:\n${r.diagnostics.map((x) => `${x.code} ${x.message}`).join('\n')}`).toBeDefined();
      if (!d) return;
      if (c.message) expect(d.message).toMatch(c.message);
      if (c.hint) expect(d.hint ?? '').toMatch(c.hint);
      if (c.at) {
        const text = r.program.texts.get(d.file) ?? '';
        expect(text.slice(d.span.start, d.span.end)).toBe(c.at);
      }
      if (c.fix) {
        expect(d.fixes?.length).toBeGreaterThan(0);
        const text = r.program.texts.get(d.file) ?? '';
        const edits = [...d.fixes![0].edits].sort((a, b) => b.span.start - a.span.start);
        let fixed = text;
        for (const e of edits) fixed = fixed.slice(0, e.span.start) + e.newText + fixed.slice(e.span.end);
        expect(fixed).toContain(c.fix);
        // The fixed source compiles without that diagnostic.
        const again = compileText(fixed, c.files ?? {}, c.opts ?? {});
        expect(again.diagnostics.filter((x) => x.severity === 'error').map((x) => x.code)).toEqual([]);
      }
    });
  }

  test('a code is named from the registry, never written as a string', () => {
    const ctx = new Ctx({ readFile: () => undefined, readStdlib: () => undefined }, false);
    ctx.report(Codes.UnknownName, 'unknown type `Foo`', 'main.mcl', { start: 0, end: 3 });
    // @ts-expect-error a code is a registry entry (`Codes.UnknownName`), so a string does not type-check.
    ctx.report('MCL0203', 'unknown type `Foo`', 'main.mcl', { start: 0, end: 3 });
    // @ts-expect-error a misspelt name is not in the registry.
    void Codes.UnknownNmae;
    expect(ctx.diagnostics[0]).toEqual({ code: 'MCL0203', severity: 'error', message: 'unknown type `Foo`', file: 'main.mcl', span: { start: 0, end: 3 } });
  });

  test('every registered code has a case', () => {
    const covered = new Set(CASES.map((c) => c.code));
    expect(COMPILER_CODES.map((c) => c.code).filter((c) => !covered.has(c))).toEqual([]);
  });

  test('codes are unique, in the compiler ranges, with titles', () => {
    const seen = new Set<string>();
    for (const c of COMPILER_CODES) {
      expect(seen.has(c.code)).toBe(false);
      seen.add(c.code);
      expect(c.code).toMatch(/^MCL0[23467]\d\d$/);
      expect(c.title.length).toBeGreaterThan(3);
    }
  });
});
