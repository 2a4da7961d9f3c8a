// Regression tests for wrong verdicts: sources the checker once accepted (or
// rejected) wrongly, compiled end to end from text.

import { describe, expect, it } from 'vitest';
import { codes, compileText } from './helpers';

const PROGRAM = 'program { exec ["/bin/true"] }';

describe('exposed only on nested systems', () => {
  const source = (list: string) => `
import std.http.{Http}
component Web { memory 96MiB expose http: Http on tcp 8080 ${PROGRAM} }
component Admin { memory 96MiB provide http: Http ${PROGRAM} }
system Site {
  web = Web
  admin = Admin
  export api = web.http
  export console = admin.http
}
system Root {
  site = Site
  expose site.console on tcp 9090
  policy { exposed only [${list}] }
}
`;

  it('does not let an inner port name allow a second export whose inner port has the same name', () => {
    const r = compileText(source('site.http'));
    expect(codes(r)).toEqual(['MCL0517']);
    expect(r.diagnostics[0].message).toBe('System `site` has no port `http`.');
    expect(r.plan).toBeUndefined();
  });

  it('names the subsystem ports by export', () => {
    const r = compileText(source('site.api'));
    expect(r.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual([
      'MCL0504 `site.admin.http` is exposed on tcp 9090, but `exposed only [site.api]` does not list it.',
    ]);
    expect(compileText(source('site.api, site.console')).diagnostics).toEqual([]);
  });
});

describe('labels declared in another module', () => {
  const main = `
import std.kv.{Kv}
component Db { memory 96MiB label secret provide kv: Kv ${PROGRAM} }
component App { memory 96MiB require db: Kv ${PROGRAM} }
system S {
  app = App
  db = Db
  connect app.db -> db.kv
}
`;

  it('do not lift the constraint off unlabelled instances', () => {
    expect(codes(compileText(main))).toEqual(['MCL0507']);
    // A module that is not rooted at `public` leaves the order without a least label.
    const r = compileText(main, { 'tenants.mcl': 'labels { tenant < tenant_secret }\n' }, { entries: ['main.mcl', 'tenants.mcl'] });
    expect(codes(r)).toEqual(['MCL0507']);
    expect(r.diagnostics[0].message).toBe(
      'Data labelled `secret` reaches `app`, which is unlabelled (so at the bottom: it may receive only minimal labels), over channel `app.db->db.kv`: db -> app.',
    );
  });
});

describe('several root systems', () => {
  const two = `
import std.kv.{Kv}
component Db { memory 96MiB label secret provide kv: Kv ${PROGRAM} }
component App { memory 96MiB label secret require db: Kv ${PROGRAM} }
system A {
  app = App
  db = Db
  connect app.db -> db.kv
  policy { db only from outside }
}
system B {
  app = App
  db = Db
  connect app.db -> db.kv
  policy { no path app -> db }
}
`;

  it('reports the policy violations of every root system, not only the first', () => {
    const r = compileText(two, {}, { emitPlan: false });
    expect(codes(r)).toEqual(['MCL0501', 'MCL0503']);
  });

  it('still checks the policies of a system when an error is in a file it does not depend on', () => {
    const r = compileText(two, { 'other.mcl': 'type Broken = int(5..1)\n' }, { emitPlan: false, entries: ['main.mcl', 'other.mcl'] });
    expect(codes(r)).toEqual(['MCL0501', 'MCL0503', 'MCL0302']);
    // An error in a module the system imports leaves its composition in doubt: no policy verdict then.
    const imported = compileText(`import other.{Broken}\n${two}`, { 'other.mcl': 'type Broken = int(5..1)\n' }, { emitPlan: false });
    // (The import is not used by the sources, so it is also reported as unused.)
    expect(codes(imported)).toEqual(['MCL0212', 'MCL0302']);
  });
});

describe('allow and order', () => {
  const source = (allow: string) => `
type Chunk = { data: string }
protocol File {
  call open(Chunk) -> Chunk
  send write(Chunk)
  call close(Chunk) -> Chunk
  order (open write* close)*
}
component Store { memory 96MiB provide file: File ${PROGRAM} }
component Writer { memory 96MiB require file: File ${PROGRAM} }
system S {
  w = Writer
  s = Store
  connect w.file -> s.file { ${allow} }
}
`;

  it('rejects an allow list that leaves the order no way to reach an allowed operation', () => {
    const r = compileText(source('allow write, close'));
    expect(r.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual([
      'MCL0419 the order of `File` never lets `close` through on this channel: it needs `open` first, which `allow` leaves out',
      'MCL0419 the order of `File` never lets `write` through on this channel: it needs `open` first, which `allow` leaves out',
    ]);
    expect(r.diagnostics[0].hint).toBe('add `open` to `allow`, or remove `close` from it');
    expect(r.plan).toBeUndefined();
  });

  it('names what the order needs after an allowed operation to finish', () => {
    const r = compileText(source('allow open, write'));
    expect(r.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual([
      'MCL0419 the order of `File` never lets `open` through on this channel: the order cannot finish after it without `close`, which `allow` leaves out',
      'MCL0419 the order of `File` never lets `write` through on this channel: the order cannot finish after it without `close`, which `allow` leaves out',
    ]);
  });

  it('accepts an allow list under which every allowed operation can be used', () => {
    expect(compileText(source('allow open, close')).diagnostics).toEqual([]);
    expect(compileText(source('allow open, write, close')).diagnostics).toEqual([]);
  });
});

describe('declassification', () => {
  it('rejects a declassification that goes up the label order', () => {
    const r = compileText(`component C { memory 96MiB label secret declassifies internal -> secret ${PROGRAM} }\nsystem S { c = C }\n`);
    expect(r.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual([
      'MCL0418 declassifying `internal` to `secret` raises it: `secret` is above `internal` in the label order',
    ]);
    expect(r.diagnostics[0].hint).toBe('a declassification lowers a label: did you mean `declassifies secret -> internal`? Data flows up the order without one');
    expect(compileText(`component C { memory 96MiB label secret declassifies secret -> internal ${PROGRAM} }\nsystem S { c = C }\n`).diagnostics).toEqual([]);
  });
});

describe('hints for an unwired port', () => {
  const source = (policy: string, dbLabel = '') => `
import std.kv.{Kv}
component Db { memory 96MiB ${dbLabel} provide kv: Kv ${PROGRAM} }
component App { memory 96MiB require db: Kv ${PROGRAM} }
system S {
  app = App
  db = Db
  policy { ${policy} }
}
`;

  it('never propose a connect that breaks a declared policy', () => {
    expect(compileText(source('budget vcpus 8')).diagnostics[0].hint).toBe('add `connect app.db -> db.kv`');
    for (const [policy, label, broken] of [
      ['no path app -> db', '', '`no path app -> db`'],
      ['db only from outside', '', '`db only from outside`'],
      ['budget vcpus 8', 'label secret', 'the label order (data of `db`, labelled secret, would reach `app`, unlabelled)'],
    ]) {
      const r = compileText(source(policy, label));
      expect(codes(r)).toEqual(['MCL0406']);
      expect(r.diagnostics[0].hint).toBe(`\`db.kv\` provides \`std.kv.Kv\`, but connecting it would break ${broken}; add an instance that provides \`std.kv.Kv\` and connect it, or declare the port \`optional\``);
      expect(r.diagnostics[0].fixes).toBeUndefined();
    }
  });
});

describe('the default target', () => {
  const big = `component Big { memory 96MiB vcpus 2 replicas 5 ${PROGRAM} }\nsystem S { b = Big }\n`;

  it('is reported at the user deploy or root system, not inside the prelude', () => {
    let r = compileText(big);
    expect(r.diagnostics.map((d) => `${d.file} ${d.code}`)).toEqual(['main.mcl MCL0511']);
    expect(r.diagnostics[0].span).toEqual({ start: big.indexOf('S {'), end: big.indexOf('S {') + 1 });
    const deployed = `${big}deploy S\n`;
    r = compileText(deployed);
    expect(r.diagnostics.map((d) => `${d.file} ${d.code}`)).toEqual(['main.mcl MCL0511']);
    expect(r.diagnostics[0].span.start).toBe(deployed.indexOf('deploy S'));
  });
});
