// The Program the language server reads: symbols for every declaration and
// member, and a reference for every name use, so that go-to-definition,
// find-references and rename work from the compiler's data alone.

import { describe, expect, test } from 'vitest';
import type { ParseCache, ParsedSource } from '../src/index';
import { compileText } from './helpers';

const SRC = `import std.kv.{Kv}
type Mode = enum { fast, safe }
protocol Ask {
  call ask({ q: string }) -> { a: string }
  send tell(Msg)
  order (ask | tell)*
}
type Msg = { text: string }
component Db {
  label secret
  provide kv: Kv
  param mode: Mode = fast
}
component App {
  label secret
  require db: Kv
  provide ask: Ask
}
system Shop {
  app = App
  db = Db { mode = safe }
  connect app.db -> db.kv { allow get }
  policy { db only from app }
}
`;

function at(text: string, needle: string, nth = 0): number {
  let i = -1;
  for (let k = 0; k <= nth; k++) i = text.indexOf(needle, i + 1);
  if (i < 0) throw new Error(`no ${needle}`);
  return i;
}

describe('program symbols and references', () => {
  const r = compileText(SRC, {}, { index: true });
  const refsAt = (offset: number) => r.program.references.filter((x) => x.file === 'main.mcl' && x.span.start <= offset && offset < x.span.end);
  const symbolAt = (needle: string, nth = 0) => {
    const refs = refsAt(at(SRC, needle, nth));
    expect(refs.length, `reference at ${needle}#${nth}`).toBeGreaterThan(0);
    return r.program.symbols.get(refs[refs.length - 1].symbol)!;
  };

  test('ports name their protocol in the index, as composition resolved it', () => {
    const port = [...r.program.symbols.values()].find((x) => x.kind === 'port' && x.qualifiedName === 'main.App.ask');
    expect(port?.protocol).toBe('main.mcl#protocol:Ask');
    const kv = [...r.program.symbols.values()].find((x) => x.kind === 'port' && x.qualifiedName === 'main.Db.kv');
    expect(kv?.protocol).toBe('std:kv#protocol:Kv');
  });

  test('compiles cleanly', () => {
    expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  });

  test('each component instance carries its settings in effect, with where its parameter values are written', () => {
    const db = r.program.instances.get('main.mcl#instance:Shop.db')!;
    expect(db).toMatchObject({ memory: 128 * 2 ** 20, vcpus: 1, mode: 'single', replicas: 1 });
    expect(db.params).toEqual([{ name: 'mode', origin: 'override', sensitive: false, value: { file: 'main.mcl', span: { start: at(SRC, 'mode = safe') + 7, end: at(SRC, 'mode = safe') + 11 } }, type: { file: 'main.mcl', span: { start: at(SRC, 'Mode = fast'), end: at(SRC, 'Mode = fast') + 4 } } }]);
    const sized = compileText('component A { memory 64MiB\n replicas 3\n param n: int = 2 }\nsystem S { a = A { vcpus 2 } }\n', {}, { index: true, emitPlan: false });
    const a = sized.program.instances.get('main.mcl#instance:S.a')!;
    expect(a).toMatchObject({ memory: 64 * 2 ** 20, vcpus: 2, mode: 'replicas', replicas: 3 });
    expect(a.params[0]).toMatchObject({ name: 'n', origin: 'default', value: { file: 'main.mcl' } });
    expect(compileText(SRC, {}, { emitPlan: false }).program.instances.size).toBe(0);
  });

  test('declarations and members have symbols with qualified names and details', () => {
    const s = r.program.symbols;
    expect(s.get('main.mcl#component:Db')?.qualifiedName).toBe('main.Db');
    expect(s.get('main.mcl#port:Db.kv')?.detail).toBe('provide kv: std.kv.Kv');
    expect(s.get('main.mcl#port:Db.kv')?.container).toBe('main.mcl#component:Db');
    expect(s.get('main.mcl#param:Db.mode')?.detail).toBe('param mode: Mode');
    expect(s.get('main.mcl#instance:Shop.db')?.detail).toBe('db = main.Db');
    expect(s.get('main.mcl#operation:Ask.ask')).toBeDefined();
    expect(s.get('main.mcl#field:Ask.ask.input.q')).toBeDefined();
    expect(s.get('main.mcl#enum-member:Mode.fast')).toBeDefined();
    expect(s.get('main.mcl#field:Msg.text')).toBeDefined();
    expect(s.get('std:kv#protocol:Kv')?.qualifiedName).toBe('std.kv.Kv');
    expect(s.get('std:prelude#label:secret')).toBeDefined();
  });

  test('every kind of name use resolves to its declaration', () => {
    expect(symbolAt('Kv}').id).toBe('std:kv#protocol:Kv');
    expect(symbolAt('std.kv').kind).toBe('module');
    expect(symbolAt('Msg)').id).toBe('main.mcl#type:Msg');
    expect(symbolAt('ask |').id).toBe('main.mcl#operation:Ask.ask');
    expect(symbolAt('secret').id).toBe('std:prelude#label:secret');
    expect(symbolAt('Mode = fast').id).toBe('main.mcl#type:Mode');
    expect(symbolAt('fast\n').id).toBe('main.mcl#enum-member:Mode.fast');
    expect(symbolAt('Db {', 1).id).toBe('main.mcl#component:Db');
    expect(symbolAt('mode = safe').id).toBe('main.mcl#param:Db.mode');
    expect(symbolAt('app.db').id).toBe('main.mcl#instance:Shop.app');
    expect(symbolAt('db ->').id).toBe('main.mcl#port:App.db');
    expect(symbolAt('kv {').id).toBe('main.mcl#port:Db.kv');
    expect(symbolAt('get').id).toBe('std:kv#operation:Kv.get');
    expect(symbolAt('db only').id).toBe('main.mcl#instance:Shop.db');
    expect(symbolAt('app }').id).toBe('main.mcl#instance:Shop.app');
  });

  test('a declaration name is a reference to its own symbol (for rename)', () => {
    const sym = symbolAt('Db {');
    const refs = r.program.references.filter((x) => x.symbol === sym.id);
    expect(refs.map((x) => SRC.slice(x.span.start, x.span.end))).toEqual(['Db', 'Db']);
  });

  test('files and texts include the stdlib modules used', () => {
    expect([...r.program.files.keys()].sort()).toEqual(['main.mcl', 'std:kv', 'std:prelude']);
    expect(r.program.texts.get('main.mcl')).toBe(SRC);
  });

  test('a parse cache is used for unchanged files', () => {
    const seen: string[] = [];
    const store = new Map<string, unknown>();
    const cache = {
      get: (p: string, t: string) => {
        const v = store.get(p + t);
        if (v) seen.push(p);
        return v as never;
      },
      set: (p: string, t: string, f: unknown) => void store.set(p + t, f),
    };
    compileText(SRC, {}, { cache });
    expect(seen).toEqual([]);
    const again = compileText(SRC, {}, { cache });
    expect(seen.sort()).toEqual(['main.mcl', 'std:kv', 'std:prelude']);
    expect(again.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  });

  test('a file served from the parse cache keeps its syntax diagnostics, and what they cover is not reported again', () => {
    const store = new Map<string, ParsedSource>();
    const cache: ParseCache = { get: (p, t) => store.get(p + t), set: (p, t, parsed) => void store.set(p + t, parsed) };
    const broken = 'component A {\n  memory\n}\nsystem S { a = A }\n';
    const first = compileText(broken, {}, { cache, emitPlan: false });
    expect(first.diagnostics.some((d) => d.code.startsWith('MCL01'))).toBe(true);
    const again = compileText(broken, {}, { cache, emitPlan: false });
    expect(again.diagnostics).toEqual(first.diagnostics);
  });
});

describe('checking a workspace with several root systems', () => {
  const SRC2 = `import std.http.{Http}
component W { expose http: Http on tcp 8080 }
system A { w = W }
system B { w = W
  policy { exposed only [] } }
`;
  test('without a plan, every root is checked and none is an error to choose', () => {
    const r = compileText(SRC2, {}, { emitPlan: false });
    expect(r.diagnostics.map((d) => d.code)).toEqual(['MCL0504']);
    expect(r.plan).toBeUndefined();
  });
  test('a plan needs one root', () => {
    const r = compileText(SRC2);
    expect(r.diagnostics.map((d) => d.code)).toEqual(['MCL0604']);
  });
});

describe('the index is optional', () => {
  test('without `index` the program has no symbols or references, and the same diagnostics and plan', () => {
    const plain = compileText(SRC);
    const indexed = compileText(SRC, {}, { index: true });
    expect(plain.program.symbols.size).toBe(0);
    expect(plain.program.references).toEqual([]);
    expect(indexed.program.symbols.size).toBeGreaterThan(10);
    expect(plain.diagnostics).toEqual(indexed.diagnostics);
    expect(JSON.stringify(plain.plan)).toBe(JSON.stringify(indexed.plan));
  });
});

describe('hints', () => {
  test('an unknown name declared by a loaded module suggests the import', () => {
    const r = compileText('type A = { r: std.http.Request, q: Response }\n');
    const d = r.diagnostics.find((x) => x.code === 'MCL0203');
    expect(d?.hint).toBe('import it: `import std.http.{Response}`');
  });
});
