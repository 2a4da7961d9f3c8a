// Names inside nested systems in outer policy rules (`no path farm.web ->
// analyst`) and qualified targets after `deploy ... to`, compiled end to end.

import { describe, expect, it } from 'vitest';
import { codes, compileText } from './helpers';

const PROGRAM = 'program { exec ["/bin/true"] }';

const farm = (rules: string) => `
import std.kv.{Kv}
labels { public < secret }
component Web { memory 96MiB label secret require store: Kv provide api: Kv declassifies secret -> public ${PROGRAM} }
component Store { memory 96MiB label secret provide kv: Kv ${PROGRAM} }
component Analyst { memory 96MiB require data: Kv ${PROGRAM} }
system Farm {
  web = Web
  store = Store
  connect web.store -> store.kv
  export api = web.api
}
system Top {
  farm = Farm
  analyst = Analyst
  connect analyst.data -> farm.api
  policy { ${rules} }
}
`;

describe('paths into nested systems in policy rules', () => {
  it('check the instance the path names', () => {
    const r = compileText(farm('no path analyst -> farm.store'));
    expect(r.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual([
      'MCL0503 `no path analyst -> farm.store` is violated: analyst -> farm.web -> farm.store.',
    ]);
    expect(codes(compileText(farm('no path farm.store -> analyst')))).toEqual([]);
    expect(codes(compileText(farm('farm.store only from farm.web')))).toEqual([]);
    expect(codes(compileText(farm('farm.web only from farm.store')))).toEqual(['MCL0501']);
    expect(codes(compileText(farm('no flow secret -> farm.web')))).toEqual(['MCL0508']);
    expect(codes(compileText(farm('no flow secret -> analyst')))).toEqual([]);
  });

  it('point at the first segment that does not exist, with suggestions among the names of the system it is looked up in', () => {
    const src = farm('no path farm.stor -> analyst');
    const r = compileText(src);
    expect(codes(r)).toEqual(['MCL0515']);
    const d = r.diagnostics[0];
    expect(d.message).toBe('system `farm` has no instance or nested system `stor`.');
    expect(src.slice(d.span.start, d.span.end)).toBe('stor');
    expect(d.hint).toBe('Did you mean `store`?');
    expect(d.fixes?.[0].edits[0].newText).toBe('store');

    const first = farm('no path frm.store -> analyst');
    const f = compileText(first).diagnostics[0];
    expect(f.message).toBe('`frm` is not an instance or nested system of the root system.');
    expect(first.slice(f.span.start, f.span.end)).toBe('frm');
  });

  it('say when a path goes on below a component instance', () => {
    const src = farm('no path farm.web.api -> analyst');
    const r = compileText(src);
    expect(codes(r)).toEqual(['MCL0515']);
    expect(r.diagnostics[0].message).toBe('`farm.web` is a component instance, not a nested system: there is nothing named `api` inside it.');
    expect(src.slice(r.diagnostics[0].span.start, r.diagnostics[0].span.end)).toBe('.api');
  });

  it('are kept by the parser as one name with its segments', () => {
    const r = compileText(farm('no path farm.store -> analyst'));
    const top = r.program.files.get('main.mcl')!.decls.find((d) => d.kind === 'SystemDecl' && d.name.name === 'Top')!;
    const block = (top as { members: { kind: string; rules?: unknown[] }[] }).members.find((m) => m.kind === 'PolicyBlock')!;
    const rule = block.rules![0] as { from: { name: string; parts?: { name: string }[] } };
    expect(rule.from.name).toBe('farm.store');
    expect(rule.from.parts?.map((p) => p.name)).toEqual(['farm', 'store']);
  });
});

describe('qualified names in deploy', () => {
  const infra = `
target big { backend kvm memory 8GiB vcpus 4 }
`;
  const apps = `
import std.kv.{Kv}
component Store { memory 96MiB provide kv: Kv ${PROGRAM} }
system Sys { store = Store }
`;
  it('deploy a system and a target of other modules', () => {
    const r = compileText('deploy apps.Sys to infra.big\n', { 'infra.mcl': infra, 'apps.mcl': apps });
    expect(r.diagnostics).toEqual([]);
    expect(r.plan?.target.name).toBe('big');
  });

  it('report an unknown target of a module at its name, and an unknown module at the module path', () => {
    const src = 'deploy apps.Sys to infra.bigg\n';
    const r = compileText(src, { 'infra.mcl': infra, 'apps.mcl': apps });
    expect(r.diagnostics.map((d) => `${d.code} ${src.slice(d.span.start, d.span.end)} ${d.message}`)).toEqual([
      'MCL0203 bigg module `infra` does not declare `bigg`',
    ]);
    const src2 = 'deploy apps.Sys to infr.big\n';
    const r2 = compileText(src2, { 'infra.mcl': infra, 'apps.mcl': apps });
    expect(r2.diagnostics.map((d) => `${d.code} ${src2.slice(d.span.start, d.span.end)}`)).toEqual(['MCL0201 infr']);
  });
});
