// Late binding between declared candidates (`connect a.db -> x.sql | y.sql`):
// every candidate is checked as a connection of its own, by the type checks
// and by every policy check, and the plan records them all on the requiring
// port with the one it is bound to at deploy.

import { describe, expect, test } from 'vitest';
import { digestMismatches, validatePlan } from '@mcl/plan';
import { parse } from '@mcl/language';
import { codes, compileText } from './helpers';

const BASE = `protocol Sql { call query(string) -> string }
protocol Kv { call get(string) -> string }
component App { require db: Sql }
component Db { provide sql: Sql }
component Cache { provide kv: Kv }
`;
const sys = (body: string) => `${BASE}system S {\n${body}\n}\n`;
const errors = (src: string) => compileText(src).diagnostics.filter((d) => d.severity === 'error');

describe('late binding', () => {
  test('parses the candidates in order after the first', () => {
    const f = parse(sys('app = App\nconnect app.db -> db1.sql | db2.sql | db3.sql { rate 5/s }'), 'main.mcl');
    expect(f.diagnostics).toEqual([]);
    const s = f.file.decls.find((d) => d.kind === 'SystemDecl')!;
    const c = s.kind === 'SystemDecl' ? s.members.find((m) => m.kind === 'ConnectDecl') : undefined;
    expect(c?.kind === 'ConnectDecl' && [c.to, ...(c.candidates ?? [])].map((p) => p.instance.name)).toEqual(['db1', 'db2', 'db3']);
    expect(c?.kind === 'ConnectDecl' && c.attrs.length).toBe(1);
  });

  test('plans one channel per candidate, the first bound at deploy, all listed by the port', () => {
    const r = compileText(sys('app = App\ndb1 = Db\ndb2 = Db\nconnect app.db -> db1.sql | db2.sql { rate 5/s }'));
    expect(errors(sys('app = App\ndb1 = Db\ndb2 = Db\nconnect app.db -> db1.sql | db2.sql'))).toEqual([]);
    const chans = r.plan!.channels.map((c) => [c.id, c.candidate, c.invariants.rate]);
    expect(chans).toEqual([
      ['app.db->db1.sql', { initial: true }, { burst: 5, per_second: 5 }],
      ['app.db->db2.sql', { initial: false }, { burst: 5, per_second: 5 }],
    ]);
    expect(r.plan!.instances.find((i) => i.id === 'app')!.ports[0].channels).toEqual(['app.db->db1.sql', 'app.db->db2.sql']);
    expect(validatePlan(JSON.parse(JSON.stringify(r.plan))).errors).toEqual([]);
    expect(digestMismatches(JSON.parse(JSON.stringify(r.plan)))).toEqual([]);
    // An ordinary connection carries no `candidate` (plans without late binding are unchanged).
    const plain = compileText(sys('app = App\ndb1 = Db\nconnect app.db -> db1.sql'));
    expect(plain.plan!.channels[0]).not.toHaveProperty('candidate');
  });

  test('every candidate is type-checked, and an unknown one is reported at its name', () => {
    expect(codes(compileText(sys('app = App\ndb1 = Db\nc = Cache\nconnect app.db -> db1.sql | c.kv')))).toEqual(['MCL0404']);
    const unknown = errors(sys('app = App\ndb1 = Db\nconnect app.db -> db1.sql | db9.sql'));
    expect(unknown.map((d) => d.code)).toEqual(['MCL0401']);
    expect(unknown[0].message).toContain('db9');
  });

  test('every candidate counts for reachability, `no path`, `only from` and information flow', () => {
    const twoDbs = 'app = App\ndb1 = Db\ndb2 = Db\nconnect app.db -> db1.sql | db2.sql';
    expect(codes(compileText(sys(`${twoDbs}\npolicy { no path app -> db2 }`)))).toContain('MCL0503');
    expect(codes(compileText(sys(`${twoDbs}\npolicy { db2 only from db1 }`)))).not.toEqual([]);
    expect(codes(compileText(sys('app = App\ndb1 = Db\ndb2 = Db { label secret }\nconnect app.db -> db1.sql | db2.sql')))).toContain('MCL0507');
    // Without the second candidate the same rules hold.
    expect(errors(sys('app = App\ndb1 = Db\ndb2 = Db\nconnect app.db -> db1.sql\npolicy { no path app -> db2\n db2 only from db1 }'))).toEqual([]);
  });

  test('a factory port cannot switch, a candidate is named once, and the port is still wired once', () => {
    const farm = 'protocol Jobs { call run(string) -> string }\ncomponent Worker { provide jobs: Jobs }\ncomponent Coord { require workers: factory Worker { max 2 } }\n';
    expect(codes(compileText(`${farm}system S {\nc = Coord\nw = Worker { created by c.workers }\nv = Worker\nconnect c.workers -> w.jobs | v.jobs\n}\n`))).toEqual(['MCL0454']);
    expect(codes(compileText(sys('app = App\ndb1 = Db\ndb2 = Db\nconnect app.db -> db1.sql | db2.sql | db1.sql')))).toEqual(['MCL0455']);
    const twice = errors(sys('app = App\ndb1 = Db\ndb2 = Db\nconnect app.db -> db1.sql\nconnect app.db -> db2.sql'));
    expect(twice.map((d) => d.code)).toEqual(['MCL0405']);
    expect(twice[0].hint).toContain('`connect app.db -> db1.sql | db2.sql`');
  });
});
