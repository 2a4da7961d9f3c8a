// The egress forms of a system: `egress name: inst.port -> "address" { ... }`
// and the policy rule `egress only [...]`; `egress` stays a name elsewhere.

import { describe, expect, it } from 'vitest';
import { parse, type EgressDecl, type PolicyBlock, type SystemDecl } from '../src/index';

function system(body: string) {
  const r = parse(`system S {\n${body}\n}\n`, 'test.mcl');
  return { sys: r.file.decls[0] as SystemDecl, diagnostics: r.diagnostics.map((d) => `${d.code} ${d.message}`) };
}

describe('egress', () => {
  it('parses a declaration with its destination and its block of attributes and label', () => {
    const { sys, diagnostics } = system('egress mail: relay.smtp -> "tcp://smtp.example.com:25" { max_connections 4; connection_rate 10/s burst 2; label partner; rate 5/s }');
    expect(diagnostics).toEqual([]);
    const e = sys.members[0] as EgressDecl;
    expect(e).toMatchObject({
      kind: 'EgressDecl',
      name: { name: 'mail' },
      port: { kind: 'PortRef', instance: { name: 'relay' }, port: { name: 'smtp' } },
      destination: { kind: 'String', value: 'tcp://smtp.example.com:25' },
    });
    expect(e.attrs.map((a) => a.kind)).toEqual(['ConnectionAttr', 'ConnectionAttr', 'LabelMember', 'RateAttr']);
  });

  it('parses a declaration without a block', () => {
    const { sys, diagnostics } = system('egress pay: shop.api -> "https://api.example.com/v1"');
    expect(diagnostics).toEqual([]);
    expect((sys.members[0] as EgressDecl).attrs).toEqual([]);
  });

  it('keeps `egress` a name: an instance, a port, a rule subject', () => {
    const { sys, diagnostics } = system('egress = Gateway\nconnect egress.out -> x.in\npolicy { egress only from x\n no path egress -> x }');
    expect(diagnostics).toEqual([]);
    expect(sys.members[0]).toMatchObject({ kind: 'InstanceDecl', name: { name: 'egress' } });
    const rules = (sys.members[2] as PolicyBlock).rules;
    expect(rules[0]).toMatchObject({ kind: 'OnlyRule', target: { name: 'egress' }, mode: 'from' });
    expect(rules[1]).toMatchObject({ kind: 'NoPathRule', from: { name: 'egress' } });
  });

  it('parses `egress only [...]`, with dotted names and an empty list', () => {
    const { sys, diagnostics } = system('policy { egress only [mail, shop.pay]\n egress only [] }');
    expect(diagnostics).toEqual([]);
    const rules = (sys.members[0] as PolicyBlock).rules;
    expect(rules[0]).toMatchObject({ kind: 'EgressOnlyRule', names: [{ name: 'mail' }, { name: 'shop.pay' }] });
    expect(rules[1]).toMatchObject({ kind: 'EgressOnlyRule', names: [] });
  });

  it('says what is missing, at the fault, and recovers on the next line', () => {
    expect(system('egress mail relay.smtp -> "tcp://h:25"\nx = Y').diagnostics).toEqual([expect.stringMatching(/^MCL01\d\d .*`:` and the required port/)]);
    expect(system('egress mail: relay.smtp "tcp://h:25"\nx = Y').diagnostics).toEqual([expect.stringMatching(/`->` and the destination address/)]);
    const bare = system('egress mail: relay.smtp -> smtp.example.com\nx = Y');
    expect(bare.diagnostics[0]).toMatch(/the destination address as a string/);
    expect(bare.sys.members[0]).toMatchObject({ kind: 'EgressDecl', destination: { kind: 'MissingExpr' } });
    expect(bare.diagnostics).toHaveLength(1);
    expect(system('egress m: r.s -> "tcp://h:25" { owner x }').diagnostics).toEqual([expect.stringMatching(/channel attribute/)]);
  });
});
