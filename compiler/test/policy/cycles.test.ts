import { describe, expect, it } from 'vitest';
import { diagnosticInfos } from '@mcl/language';
import { checkPolicies } from '../../src/policy';

const POLICY_CODES = diagnosticInfos.filter((i) => i.code.startsWith('MCL05'));
import { InputBuilder } from './build';

function check(result: ReturnType<typeof checkPolicies>, id: string) {
  const c = result.checks.find((x) => x.id === id);
  if (!c) throw new Error(`no check ${id}; have ${result.checks.map((x) => x.id).join(', ')}`);
  return c;
}

describe('call cycles', () => {
  it('passes on an acyclic call graph and on cycles that are not all calls', () => {
    const b = new InputBuilder().instance('web').instance('app').instance('log');
    b.connect('web.app', 'app.api').connect('app.log', 'log.in', ['send']).connect('log.back', 'web.ev', ['send', 'notify']);
    const r = checkPolicies(b.input);
    expect(check(r, 'call-cycles')).toMatchObject({ status: 'pass', kind: 'call-cycles' });
    expect(r.diagnostics).toEqual([]);
  });

  it('reports ping and pong calling each other, at the first channel of the cycle', () => {
    const b = new InputBuilder().instance('ping').instance('pong');
    b.connect('ping.out', 'pong.in').connect('pong.out', 'ping.in');
    const r = checkPolicies(b.input);
    const c = check(r, 'call-cycles');
    expect(c.status).toBe('fail');
    expect(c.counterexample).toEqual([
      { instance: 'ping' },
      { channel: 'ping.out->pong.in' },
      { instance: 'pong' },
      { channel: 'pong.out->ping.in' },
      { instance: 'ping' },
    ]);
    expect(r.diagnostics).toMatchObject([
      {
        code: 'MCL0514',
        span: b.input.origins.channels['ping.out->pong.in'].span,
        message: 'These instances call each other in a cycle and can deadlock: ping -> pong -> ping.',
      },
    ]);
    expect(r.diagnostics[0].related).toHaveLength(5);
  });

  it('reports a self call and each separate cycle once, with the shortest cycle', () => {
    const b = new InputBuilder().instance('a').instance('b').instance('c').instance('self');
    b.connect('a.b', 'b.in').connect('b.c', 'c.in').connect('c.a', 'a.in').connect('b.a', 'a.in2');
    b.connect('self.me', 'self.in');
    const r = checkPolicies(b.input);
    expect(check(r, 'call-cycles').summary).toBe('2 cycles of call channels; the first: a -> b -> a.');
    expect(r.diagnostics.map((d) => d.message)).toEqual([
      'These instances call each other in a cycle and can deadlock: a -> b -> a.',
      'These instances call each other in a cycle and can deadlock: self -> self.',
    ]);
  });
});

describe('code registry', () => {
  it('registers every code once, in the policy stage and range', () => {
    const codes = POLICY_CODES.map((c) => c.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const c of POLICY_CODES) {
      expect(c.code).toMatch(/^MCL05\d\d$/);
      expect(c.stage).toBe('policy');
    }
  });
});
