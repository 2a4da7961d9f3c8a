// The broker's security decisions, without sockets: whether a frame from a
// requiring side is admitted on its channel (direction, rate, operation,
// schema, size, in-flight calls, protocol order), whether a provider's reply
// or notification is, and what is still missing when a session ends out of
// order. Each decision returns what to forward, or the violation kind and a
// detail a person can read (spec/broker.md, "Checks, in order").
//
// No IO and no clock of their own: the only state they change is the state
// handed to them (a clone's token bucket), and the caller applies the rest
// (the order automaton's next state, in-flight counts) once the frame is
// forwarded.

import type { ChannelInvariants, OrderAutomaton, PlanOperation } from '@mcl/plan';
import type { Envelope } from './frames';
import { bodyFromLine, encode, encodePlain, prefixBody } from './frames';
import type { TokenBucket } from './lines';
import type { Validator } from './schema';
import type { ViolationKind } from './types';

/** An operation of a channel, with its compiled schemas. */
export interface OpRt {
  name: string;
  kind: PlanOperation['kind'];
  input: Validator;
  output: Validator | null;
  /** JSON-encoded op name, ready to splice into frames. */
  json: string;
  /** `json`'s length in UTF-8, counted once for the bytes of every frame it is written into. */
  jsonBytes: number;
}

/** What the decisions know of a channel. */
export interface ChannelRules {
  ops: Map<string, OpRt>;
  inv: ChannelInvariants;
  order: OrderAutomaton | null;
  /** `<instance>.<port>` of the providing side, for details. */
  provides: string;
}

/**
 * What one clone of a requiring instance may use of a channel: its own token
 * bucket of the channel's rate and its own count of outstanding calls, so
 * that a compromised replica exhausts only its own. Every client of an
 * exposure shares one (they are all the exposure's requester).
 */
export interface Budget {
  bucket: TokenBucket | null;
  inflight: number;
}

/** A refused frame: the violation's kind and detail. */
export interface Refusal {
  ok: false;
  kind: ViolationKind;
  detail: string;
}

export interface RequestAdmitted {
  ok: true;
  op: OpRt;
  /** The body re-encoded, as forwarded. */
  bodyJson: string;
  /** The order automaton's state after this frame (apply it once the frame is forwarded), or null without an order. */
  orderState: number | null;
}

function refuse(kind: ViolationKind, detail: string): Refusal {
  return { ok: false, kind, detail };
}

/** Whether a body's encoding is over `max` bytes (the length test first: most bodies are far below). */
function over(json: string, max: number): boolean {
  return json.length > max && Buffer.byteLength(json) > max;
}

/**
 * Admits a call or send, or refuses a reply, error or notify, from a requiring
 * side (session frames, `open` and `close`, are not decisions). Checks 4 to 10
 * of spec/broker.md in that order; a call or send takes a token of the clone's
 * bucket even when a later check refuses it.
 */
export function admitRequest(
  rules: ChannelRules,
  budget: Budget,
  orderState: number,
  env: Envelope,
  now?: number,
  /** The frame's line held no backslash: its body is encoded by encodePlain, to the same text. */
  plain = false,
  /** The frame's line (when plain), whose text of the body is taken when it is encodePlain's (bodyFromLine). */
  line?: string,
): RequestAdmitted | Refusal {
  const { t } = env;
  if (t === 'reply' || t === 'error' || t === 'notify') return refuse('direction', `a ${t} frame comes only from the providing side (${rules.provides})`);
  if (budget.bucket && !budget.bucket.take(now)) {
    return refuse('rate', `over the channel's rate of ${rules.inv.rate!.per_second}/s (burst ${rules.inv.rate!.burst})`);
  }
  const op = rules.ops.get(env.op!);
  if (!op) {
    const known = [...rules.ops.keys()].join(', ') || 'none';
    return refuse('unknown_op', `operation ${JSON.stringify(env.op)} is not carried by this channel (allowed: ${known})`);
  }
  if (op.kind !== t) {
    if (op.kind === 'notify') return refuse('direction', `${op.name} is a notify: only the provider sends it`);
    return refuse('unknown_op', `${op.name} is a ${op.kind}: use {"t":"${op.kind}"}`);
  }
  const err = op.input(env.body);
  if (err !== undefined) return refuse('schema', `${op.name}: ${prefixBody(err)}`);
  const bodyJson = bodyText(env.body, plain, line);
  if (bodyJson === null) return refuse('schema', `${op.name}: the body is nested too deeply`);
  if (over(bodyJson, rules.inv.max_message_bytes)) {
    return refuse('oversize', `body of ${Buffer.byteLength(bodyJson)} bytes is over the channel's ${rules.inv.max_message_bytes}`);
  }
  if (t === 'call' && budget.inflight >= rules.inv.max_inflight) {
    return refuse('inflight', `${budget.inflight} calls outstanding, the channel's max_inflight is ${rules.inv.max_inflight}`);
  }
  // Last, so that a frame refused for another reason does not move the protocol state.
  let next: number | null = null;
  if (rules.order) {
    const to = rules.order.transitions[orderState]?.[op.name];
    if (to === undefined) {
      const allowed = Object.keys(rules.order.transitions[orderState] ?? {}).join(', ') || 'nothing';
      return refuse('order', `${op.name} is not allowed here by the protocol order (next may be: ${allowed})`);
    }
    next = to;
  }
  return { ok: true, op, bodyJson, orderState: next };
}

/** A frame a provide port may not send: call, send, open and close come only from the requiring side. */
export function refuseFromProvider(env: Envelope, portName: string): Refusal | null {
  const { t } = env;
  if (t === 'call' || t === 'send' || t === 'open' || t === 'close') return refuse('direction', `a ${t} frame comes only from the requiring side; ${portName} is a provide port`);
  return null;
}

/** A reply's refusal also says what its requester is told. */
export interface ReplyRefusal extends Refusal {
  /** The error text the requester gets instead of the reply. */
  error: string;
}

/**
 * The text a checked body goes on as: taken from the frame's line when the peer wrote it as the broker would
 * (bodyFromLine), else encoded (encodePlain for a line without a backslash); null when it is nested too deeply.
 */
function bodyText(body: unknown, plain: boolean, line: string | undefined): string | null {
  if (!plain) return encode(body);
  return (line !== undefined ? bodyFromLine(body, line) : null) ?? encodePlain(body);
}

/** Admits a provider's reply to an outstanding call of `op`: output schema, depth and size. */
export function admitReply(op: OpRt, inv: ChannelInvariants, body: unknown, plain = false, line?: string): { ok: true; bodyJson: string } | ReplyRefusal {
  const err = op.output ? op.output(body) : undefined;
  if (err !== undefined) {
    return { ok: false, kind: 'schema', detail: `reply to ${op.name}: ${prefixBody(err)}`, error: `the provider's reply was refused: ${prefixBody(err)}` };
  }
  const bodyJson = bodyText(body, plain, line);
  if (bodyJson === null) {
    return { ok: false, kind: 'schema', detail: `reply to ${op.name}: the body is nested too deeply`, error: `the provider's reply was refused: it is nested too deeply` };
  }
  if (over(bodyJson, inv.max_message_bytes)) {
    return {
      ok: false,
      kind: 'oversize',
      detail: `reply of ${Buffer.byteLength(bodyJson)} bytes is over the channel's ${inv.max_message_bytes}`,
      error: `the provider's reply was refused: it is larger than ${inv.max_message_bytes} bytes`,
    };
  }
  return { ok: true, bodyJson };
}

/**
 * Admits a provider's notification on one channel of its port, as far as the
 * operation goes: `absent` when the channel does not carry it (another channel
 * of the port may). A refusal ends the notification on every channel.
 */
export function admitNotify(rules: ChannelRules, opName: string, body: unknown): 'absent' | { ok: true; op: OpRt } | Refusal {
  const op = rules.ops.get(opName);
  if (!op) return 'absent';
  if (op.kind !== 'notify') return refuse('direction', `${opName} is a ${op.kind}: only the requiring side sends it`);
  const err = op.input(body);
  if (err !== undefined) return refuse('schema', `${opName}: ${prefixBody(err)}`);
  return { ok: true, op };
}

/** Refuses an encoded notification too large for one channel (it may still go to the others). */
export function refuseNotifySize(inv: ChannelInvariants, bodyJson: string): Refusal | null {
  const bytes = Buffer.byteLength(bodyJson);
  return bytes > inv.max_message_bytes ? refuse('oversize', `notify of ${bytes} bytes is over the channel's ${inv.max_message_bytes}`) : null;
}

/**
 * The shortest sequence of operations from `state` to an accepting state of
 * the order automaton ([] when `state` accepts), or null when none is
 * reachable. Breadth-first over the transitions, operations in name order, so
 * the answer is deterministic.
 */
export function completion(order: OrderAutomaton, state: number): string[] | null {
  const accepting = new Set(order.accepting);
  const via = new Map<number, { from: number; op: string } | null>([[state, null]]);
  const queue = [state];
  for (let i = 0; i < queue.length; i++) {
    const at = queue[i];
    if (accepting.has(at)) {
      const path: string[] = [];
      for (let step = via.get(at); step; step = via.get(step.from)) path.unshift(step.op);
      return path;
    }
    const edges = order.transitions[at] ?? {};
    for (const op of Object.keys(edges).sort()) {
      const to = edges[op];
      if (!via.has(to)) {
        via.set(to, { from: at, op });
        queue.push(to);
      }
    }
  }
  return null;
}

/** The detail of a session that ended in a state of the order automaton that is not accepting, or null when it is accepting. */
export function incompleteOrder(order: OrderAutomaton, state: number, why: string): string | null {
  if (order.accepting.includes(state)) return null;
  const rest = completion(order, state);
  const tail = rest === null ? ', and no accepting state can be reached from it' : rest.length ? `; it still needed: ${rest.join(', ')}` : '';
  return `the session ended (${why}) in state ${state} of the protocol order, which is not accepting${tail}`;
}
