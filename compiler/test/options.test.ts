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

describe('programs and repeated systems', () => {
  test('script, files from the workspace and inline, env and parameters', () => {
    const r = compileText(
      `component C {
  param level: enum { low, high } = high
  param limits: list<int> = [1, 2]
  program {
    script "bin/run.sh"
    file "/etc/app.conf" from "conf/app.conf"
    file "/etc/motd" = "hello"
    env { MODE = "ro", RETRIES = 3 }
  }
}
system S { c = C }
`,
      { 'bin/run.sh': 'echo run\n', 'conf/app.conf': 'x=1\n' },
    );
    const p = r.plan!.instances[0].program;
    expect(p.argv).toEqual(['/bin/sh', '/mcl/program/run.sh']);
    expect(p.files).toEqual([
      { path: '/etc/app.conf', content: 'x=1\n', mode: '0644' },
      { path: '/etc/motd', content: 'hello', mode: '0644' },
      { path: '/mcl/program/run.sh', content: 'echo run\n', mode: '0755' },
    ]);
    expect(p.env).toEqual({ MCL_PARAM_LEVEL: 'high', MCL_PARAM_LIMITS: '[1,2]', MODE: 'ro', RETRIES: '3' });
    expect(r.plan!.sources.map((s) => s.path)).toEqual(['bin/run.sh', 'conf/app.conf', 'main.mcl', 'std:prelude']);
  });

  test('a program file used by several components is read once, and all get its text', () => {
    const files = {
      'main.mcl': 'component A { program { script "run.sh" } }\ncomponent B { program { script "run.sh" } }\nsystem S { a = A\n  b = B }\n',
      'run.sh': 'echo shared\n',
    };
    const host = new MemoryHost(files);
    const r = compile(host, { entries: ['main.mcl'], mclcVersion: 't' });
    expect(host.reads.filter((p) => p === 'run.sh')).toHaveLength(1);
    expect(r.plan!.instances.map((i) => i.program.files.find((f) => f.path.endsWith('run.sh'))?.content)).toEqual(['echo shared\n', 'echo shared\n']);
  });

  test('a broken system instantiated twice is reported once', () => {
    const r = compileText(`import std.kv.{Kv}
component A { require k: Kv }
system Inner { a = A }
system Outer { x = Inner
  y = Inner }
`);
    expect(codes(r)).toEqual(['MCL0406']);
  });
});

describe('guest memory', () => {
  test('refuses less memory than a guest boots in, at the instance, and names the least', () => {
    const r = compileText('component C { memory 64MiB }\nsystem S { c = C\n d = C { memory 96MiB } }\n');
    const errs = r.diagnostics.filter((d) => d.code === 'MCL0601');
    expect(errs).toHaveLength(1);
    expect(errs[0].message).toBe('`c` has 64MiB of memory, less than a guest of backend `kvm` boots in (80MiB)');
    expect(errs[0].hint).toBe('give it at least `memory 80MiB`');
    expect(r.plan).toBeUndefined();
    expect(compileText('component C { memory 80MiB }\nsystem S { c = C }\n').plan).toBeDefined();
  });

  test('counts half a MiB of guest memory per port: 40 ports need more than 80MiB, as measured on real guests', () => {
    const ports = (n: number) => Array.from({ length: n }, (_, i) => `provide p${i}: Kv`).join('\n');
    const many = (n: number, mem: string) => compileText(`import std.kv.{Kv}\ncomponent C { memory ${mem}\n${ports(n)} }\nsystem S { c = C }\n`);
    const errs = many(40, '80MiB').diagnostics.filter((d) => d.code === 'MCL0601');
    expect(errs.map((d) => d.message)).toEqual(['`c` has 80MiB of memory, less than a guest of backend `kvm` with 40 ports boots in (89MiB)']);
    expect(errs[0].hint).toBe('give it at least `memory 89MiB` (each port holds half a MiB of receive buffers in the guest)');
    // What the real-QEMU tests boot: 40 ports in 96MiB, 118 ports in 128MiB; and 23 ports still in the plain least.
    expect(many(40, '96MiB').plan).toBeDefined();
    expect(many(118, '128MiB').plan).toBeDefined();
    expect(many(23, '80MiB').plan).toBeDefined();
    expect(many(24, '80MiB').diagnostics.map((d) => d.code)).toContain('MCL0601');
  });
});

describe('xen targets', () => {
  test('plan per-session instances (forked, or restored, per session by the Xen backend)', () => {
    const src =
      'import std.http.{Http}\ncomponent T { expose h: Http on tcp 8081\n per session max 8 }\nsystem S { t = T }\ntarget x { backend xen\n memory 8GiB\n vcpus 8 }\ndeploy S to x\n';
    const r = compileText(src);
    expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    expect(r.plan?.target.backend).toBe('xen');
    expect(r.plan?.instances.find((i) => i.id === 't')?.mode).toBe('per_session');
  });
});
