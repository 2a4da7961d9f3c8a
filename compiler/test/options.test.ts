// Compile options: system and target selection, odd entries, exclusion of nested systems.

import { describe, expect, test } from 'vitest';
import { compile } from '../src/index';
import { MemoryHost, compileText, codes } from './helpers';

const SRC = `import std.kv.{Kv}
component Db { provide kv: Kv }
component App { require db: Kv }
system Inner { db = Db
  export kv = db.kv }
system Shop { inner = Inner
  app = App
  connect app.db -> inner.kv }
system Other { db = Db }
target big { backend kvm
  memory 64GiB
  vcpus 16 }
`;

describe('options', () => {
  test('no entries: nothing to plan, no crash', () => {
    const r = compile(new MemoryHost({}), { entries: [], mclcVersion: 't' });
    expect(codes(r)).toEqual(['MCL0606']);
  });

  test('--system and --target pick the root and the host', () => {
    const r = compileText(SRC, {}, { system: 'Shop', target: 'big' });
    expect(r.plan?.system).toBe('main.Shop');
    expect(r.plan?.target).toEqual({ name: 'big', backend: 'kvm', memory_bytes: 64 * 2 ** 30, vcpus: 16, vcpu_overcommit: 1 });
    const q = compileText(SRC, {}, { system: 'main.Other' });
    expect(q.plan?.system).toBe('main.Other');
    expect(q.plan?.target.name).toBe('local');
  });

  test('unknown --system and --target get suggestions', () => {
    const r = compileText(SRC, {}, { system: 'Shp' });
    expect(codes(r)).toEqual(['MCL0604']);
    expect(r.diagnostics[0].hint).toMatch(/`Shop`/);
    const t = compileText(SRC, {}, { system: 'Shop', target: 'bigg' });
    expect(codes(t)).toEqual(['MCL0602']);
    expect(t.diagnostics[0].hint).toMatch(/`big`/);
  });

  test('excluding a nested system removes everything below it', () => {
    const r = compileText(SRC, {}, { system: 'Shop', exclude: ['inner'] });
    expect(r.plan?.instances.map((i) => i.id)).toEqual(['app']);
    expect(r.plan?.channels).toEqual([]);
    expect(codes(r)).toEqual(['MCL0705']);
  });

  test('a deploy statement names the root and target; options override it', () => {
    const src = SRC + 'deploy Other to big\n';
    expect(compileText(src).plan?.system).toBe('main.Other');
    expect(compileText(src).plan?.target.name).toBe('big');
    expect(compileText(src, {}, { system: 'Shop' }).plan?.system).toBe('main.Shop');
  });

  test('entries given with ./ and in any order are the same workspace', () => {
    const files = { 'main.mcl': SRC + 'deploy Shop\n', 'lib.mcl': 'type X = int\n' };
    const a = compile(new MemoryHost(files), { entries: ['./main.mcl', 'lib.mcl'], mclcVersion: 't' });
    const b = compile(new MemoryHost(files), { entries: ['lib.mcl', 'main.mcl'], mclcVersion: 't' });
    expect(a.plan?.digests.plan).toBe(b.plan?.digests.plan);
  });
});
