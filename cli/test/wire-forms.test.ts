// Forms of the language that reach the wire, end to end: the plan mclc builds
// from a source and a real broker relaying between fake guests. A required
// port of a refined protocol (a read-only view of a store) wired to a provider
// of the full protocol gets a channel of the narrower protocol, which the
// broker enforces; fields named by reserved words and int64 values pass the
// broker's schema checks as the spec says they travel.

import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile } from '@mcl/compiler';
import { NodeHost } from '@mcl/compiler/node-host';
import { Broker } from '@mcl/broker';
import type { Plan } from '@mcl/plan';
import { FakePort } from '../../backends/broker/test/helpers';
import { stdlibDir } from '../src/workspace';

const dirs: string[] = [];
const closers: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function planOf(source: string): Plan {
  const root = mkdtempSync(join(tmpdir(), 'mcl-wire-'));
  dirs.push(root);
  writeFileSync(join(root, 'main.mcl'), source);
  const r = compile(new NodeHost({ root, stdlib: stdlibDir() }), { entries: ['main.mcl'], mclcVersion: 'test' });
  expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return r.plan!;
}

/** A broker on the plan with a fake guest behind every port. */
async function up(plan: Plan): Promise<Map<string, FakePort>> {
  const dir = mkdtempSync(join(tmpdir(), 'mcl-wire-run-'));
  dirs.push(dir);
  const broker = new Broker(plan, { mapHostPort: () => 0, reconnectDelayMs: 10 });
  closers.push(() => broker.close());
  const fakes = new Map<string, FakePort>();
  for (const inst of plan.instances) {
    for (const p of inst.ports) {
      const f = await FakePort.listen(join(dir, `${inst.id}.${p.name}.sock`));
      closers.push(() => f.close());
      fakes.set(`${inst.id}.${p.name}`, f);
      void broker.attachPort(inst.id, 0, p.name, f.path);
      await f.connected();
    }
  }
  return fakes;
}

const PROGRAM = 'program { exec ["/bin/true"] }';

const STORE = `
type Key = string(1..16)
type Entry = { "type": enum { "map", "list" }, id: int64(0..) }
protocol Store {
  call open(Key)
  call get(Key) -> Entry
  call put({ key: Key, value: Entry })
  call close
  order (open (get | put)* close)*
}
/// A read-only view of Store: no put.
protocol StoreReader {
  call open(Key)
  call get(Key) -> Entry
  call close
  order (open get* close)*
}
component Db { memory 96MiB provide store: Store ${PROGRAM} }
component Writer { memory 96MiB require store: Store ${PROGRAM} }
component Report { memory 96MiB require store: StoreReader ${PROGRAM} }
system Main {
  db = Db
  writer = Writer
  report = Report
  connect writer.store -> db.store
  connect report.store -> db.store
}
`;

describe('a refined protocol wired to a provider of the full protocol', () => {
  it('gives the channel the narrower protocol: its operations and its order', () => {
    const plan = planOf(STORE);
    const ch = plan.channels.find((c) => c.from.instance === 'report')!;
    expect(ch.protocol).toBe('main.StoreReader');
    expect(ch.ops.map((o) => o.name)).toEqual(['close', 'get', 'open']);
    expect(ch.invariants.order).toEqual({ accepting: [0], transitions: [{ open: 1 }, { close: 0, get: 1 }] });
    expect(plan.channels.find((c) => c.from.instance === 'writer')!.ops.map((o) => o.name)).toEqual(['close', 'get', 'open', 'put']);
  });

  it('is enforced by the broker: no put, the order, and the schemas with quoted names and int64', async () => {
    const fakes = await up(planOf(STORE));
    const db = fakes.get('db.store')!;
    const report = fakes.get('report.store')!;
    db.handler = (f) => ({ t: 'reply', id: f.id, body: f.op === 'get' ? { type: 'map', id: '9223372036854775807' } : {} });
    report.send({ t: 'call', id: 1, op: 'put', body: { key: 'k', value: { type: 'map', id: 1 } } });
    expect(await report.next()).toMatchObject({ t: 'denied', id: 1, kind: 'unknown_op' });
    report.send({ t: 'call', id: 2, op: 'get', body: 'k' });
    expect(await report.next()).toMatchObject({ t: 'denied', id: 2, kind: 'order' });
    report.send({ t: 'call', id: 3, op: 'open', body: 'k' });
    expect(await report.next()).toMatchObject({ t: 'reply', id: 3 });
    report.send({ t: 'call', id: 4, op: 'get', body: 'k' });
    expect(await report.next()).toMatchObject({ t: 'reply', id: 4, body: { type: 'map', id: '9223372036854775807' } });
    // The writer's channel carries the full protocol.
    const writer = fakes.get('writer.store')!;
    writer.send({ t: 'call', id: 1, op: 'open', body: 'k' });
    expect(await writer.next()).toMatchObject({ t: 'reply', id: 1 });
    writer.send({ t: 'call', id: 2, op: 'put', body: { key: 'k', value: { type: 'list', id: '42' } } });
    expect(await writer.next()).toMatchObject({ t: 'reply', id: 2 });
    // An int64 beyond 2^53-1 sent as a JSON number has lost precision: refused.
    writer.send({ t: 'call', id: 3, op: 'put', body: { key: 'k', value: { type: 'list', id: 9007199254740993 } } });
    expect(await writer.next()).toMatchObject({ t: 'denied', id: 3, kind: 'schema' });
    writer.send({ t: 'call', id: 4, op: 'put', body: { key: 'k', value: { type: 'set', id: 1 } } });
    expect(await writer.next()).toMatchObject({ t: 'denied', id: 4, kind: 'schema' });
  });
});
