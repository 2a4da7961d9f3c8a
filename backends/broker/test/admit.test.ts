// The broker's decisions without sockets: each check of spec/broker.md
// ("Checks, in order") on a hand-made channel, in the order the spec gives.

import { describe, expect, it } from 'vitest';
import type { OrderAutomaton } from '@mcl/plan';
import { admitNotify, admitReply, admitRequest, incompleteOrder, refuseFromProvider, refuseNotifySize, type Budget, type ChannelRules, type OpRt } from '../src/admit';
import type { Envelope } from '../src/frames';
import { TokenBucket } from '../src/lines';
import { compileSchemas } from '../src/schema';
import { inv, KV_OPS, SCHEMAS, SESSION_OPS } from './helpers';

const schemas = compileSchemas(SCHEMAS);

function ops(list = KV_OPS): Map<string, OpRt> {
  return new Map(
    list.map((op) => [
      op.name,
      { name: op.name, kind: op.kind, input: schemas.get(op.input), output: op.kind === 'call' && op.output ? schemas.get(op.output) : null, json: JSON.stringify(op.name), jsonBytes: Buffer.byteLength(JSON.stringify(op.name)) },
    ]),
  );
}

function rules(over: Partial<ChannelRules> = {}): ChannelRules {
  return { ops: ops(), inv: inv(), order: null, provides: 'db.kv', ...over };
}

const budget = (b: Partial<Budget> = {}): Budget => ({ bucket: null, inflight: 0, ...b });
const call = (op: string, body: unknown, id: number | string = 1): Envelope => ({ t: 'call', op, id, body });

describe('admitRequest', () => {
  it('admits a valid call with its re-encoded body', () => {
    expect(admitRequest(rules(), budget(), 0, call('put', { key: 'a', value: 'x' }))).toMatchObject({ ok: true, op: { name: 'put' }, bodyJson: '{"key":"a","value":"x"}', orderState: null });
    expect(admitRequest(rules(), budget(), 0, { t: 'send', op: 'log', body: { message: 'm' } })).toMatchObject({ ok: true, op: { name: 'log' } });
  });

  it('refuses frames of the providing side', () => {
    for (const t of ['reply', 'error', 'notify'] as const) {
      expect(admitRequest(rules(), budget(), 0, { t, id: 1, body: {} })).toEqual({ ok: false, kind: 'direction', detail: `a ${t} frame comes only from the providing side (db.kv)` });
    }
    expect(admitRequest(rules(), budget(), 0, { t: 'send', op: 'changed', body: { key: 'a' } })).toMatchObject({ ok: false, kind: 'direction' });
  });

  it('refuses unknown operations and the wrong kind', () => {
    expect(admitRequest(rules(), budget(), 0, call('nope', {}))).toEqual({ ok: false, kind: 'unknown_op', detail: 'operation "nope" is not carried by this channel (allowed: changed, get, log, put)' });
    expect(admitRequest(rules(), budget(), 0, { t: 'send', op: 'get', body: { key: 'a' } })).toEqual({ ok: false, kind: 'unknown_op', detail: 'get is a call: use {"t":"call"}' });
  });

  it('refuses bodies that break the schema or the size', () => {
    expect(admitRequest(rules(), budget(), 0, call('get', { key: 'A!' }))).toMatchObject({ ok: false, kind: 'schema', detail: expect.stringMatching(/^get: body\.key/) });
    const big = rules({ inv: inv({ max_message_bytes: 40 }) });
    expect(admitRequest(big, budget(), 0, call('put', { key: 'a', value: 'x'.repeat(40) }))).toMatchObject({ ok: false, kind: 'oversize', detail: expect.stringMatching(/^body of \d+ bytes is over the channel's 40$/) });
  });

  it('takes a token of the clone\'s bucket for every call and send, even one refused later', () => {
    const b = budget({ bucket: new TokenBucket(1, 2, 0) });
    const r = rules({ inv: inv({ rate: { per_second: 1, burst: 2 } }) });
    expect(admitRequest(r, b, 0, call('nope', {}), 0)).toMatchObject({ kind: 'unknown_op' });
    expect(admitRequest(r, b, 0, call('get', { key: 'a' }), 0)).toMatchObject({ ok: true });
    expect(admitRequest(r, b, 0, call('get', { key: 'a' }), 0)).toEqual({ ok: false, kind: 'rate', detail: "over the channel's rate of 1/s (burst 2)" });
    // Another clone's budget is its own.
    expect(admitRequest(r, budget({ bucket: new TokenBucket(1, 2, 0) }), 0, call('get', { key: 'a' }), 0)).toMatchObject({ ok: true });
    // A second later, one token more.
    expect(admitRequest(r, b, 0, call('get', { key: 'a' }), 1000)).toMatchObject({ ok: true });
  });

  it('counts in-flight calls of the clone only, and never for sends', () => {
    const full = budget({ inflight: 8 });
    expect(admitRequest(rules(), full, 0, call('get', { key: 'a' }))).toEqual({ ok: false, kind: 'inflight', detail: "8 calls outstanding, the channel's max_inflight is 8" });
    expect(admitRequest(rules(), full, 0, { t: 'send', op: 'log', body: { message: 'm' } })).toMatchObject({ ok: true });
  });

  it('follows the order automaton, and leaves the state alone when another check refuses', () => {
    const order: OrderAutomaton = { transitions: [{ login: 1 }, { query: 1, logout: 2 }, {}], accepting: [0, 2] };
    const r = rules({ ops: ops(SESSION_OPS), order });
    expect(admitRequest(r, budget(), 0, call('query', { key: 'a' }))).toEqual({ ok: false, kind: 'order', detail: 'query is not allowed here by the protocol order (next may be: login)' });
    expect(admitRequest(r, budget(), 0, call('login', { key: 'a' }))).toMatchObject({ ok: true, orderState: 1 });
    expect(admitRequest(r, budget({ inflight: 8 }), 0, call('login', { key: 'a' }))).toMatchObject({ ok: false, kind: 'inflight' });
    expect(admitRequest(r, budget(), 2, call('login', { key: 'a' }))).toMatchObject({ ok: false, kind: 'order', detail: expect.stringContaining('next may be: nothing') });
  });
});

describe('replies and notifications', () => {
  const get = ops().get('get')!;

  it('admits a reply that matches the output schema and refuses others, with what the requester is told', () => {
    expect(admitReply(get, inv(), { miss: null })).toEqual({ ok: true, bodyJson: '{"miss":null}' });
    expect(admitReply(get, inv(), { nope: 1 })).toMatchObject({ ok: false, kind: 'schema', detail: expect.stringMatching(/^reply to get: body/), error: expect.stringMatching(/^the provider's reply was refused: body/) });
    const big = { hit: { key: 'a', value: 'x'.repeat(100) } };
    expect(admitReply(get, inv({ max_message_bytes: 50 }), big)).toMatchObject({ ok: false, kind: 'oversize', error: "the provider's reply was refused: it is larger than 50 bytes" });
  });

  it('refuses call, send, open and close from a provide port', () => {
    expect(refuseFromProvider({ t: 'call', op: 'get', id: 1, body: {} }, 'kv')).toEqual({ ok: false, kind: 'direction', detail: 'a call frame comes only from the requiring side; kv is a provide port' });
    expect(refuseFromProvider({ t: 'open' }, 'kv')).toMatchObject({ kind: 'direction' });
    expect(refuseFromProvider({ t: 'reply', id: 1, body: {} }, 'kv')).toBeNull();
  });

  it('admits a notify operation with a valid body, and says when a channel does not carry it', () => {
    expect(admitNotify(rules(), 'changed', { key: 'a' })).toMatchObject({ ok: true, op: { name: 'changed' } });
    expect(admitNotify(rules(), 'absent', {})).toBe('absent');
    expect(admitNotify(rules(), 'get', {})).toEqual({ ok: false, kind: 'direction', detail: 'get is a call: only the requiring side sends it' });
    expect(admitNotify(rules(), 'changed', { key: 1 })).toMatchObject({ ok: false, kind: 'schema' });
    expect(refuseNotifySize(inv({ max_message_bytes: 4 }), '{"key":"a"}')).toEqual({ ok: false, kind: 'oversize', detail: "notify of 11 bytes is over the channel's 4" });
    expect(refuseNotifySize(inv(), '{"key":"a"}')).toBeNull();
  });
});

describe('incompleteOrder', () => {
  const order: OrderAutomaton = { transitions: [{ login: 1 }, { query: 1, logout: 2 }, {}, {}], accepting: [0, 2] };

  it('says what was still needed, or nothing when the state accepts', () => {
    expect(incompleteOrder(order, 2, 'closed')).toBeNull();
    expect(incompleteOrder(order, 1, 'the port disconnected')).toBe('the session ended (the port disconnected) in state 1 of the protocol order, which is not accepting; it still needed: logout');
    expect(incompleteOrder(order, 3, 'closed')).toBe('the session ended (closed) in state 3 of the protocol order, which is not accepting, and no accepting state can be reached from it');
  });
});
