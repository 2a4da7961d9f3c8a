// Factory ports in the broker (spec/factories.md): a creator clone creates,
// lists and destroys instances on its factory port within the factory's
// bound and parameter types, calls them by handle, and its instances are
// destroyed with it.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { Plan } from '@mcl/plan';
import { Broker } from '../src/index';
import { FakePort, farmPlan, kvHandler, tempDir } from './helpers';

let dir: string;
let cleanup: () => void;
let broker: Broker;
const ports: FakePort[] = [];

beforeEach(() => {
  ({ dir, cleanup } = tempDir());
});
afterEach(async () => {
  await broker?.close();
  for (const p of ports.splice(0)) await p.close();
  cleanup();
});

async function start(plan: Plan) {
  const created: { clone: number; params: Record<string, unknown>; creator: string }[] = [];
  const destroyed: number[] = [];
  let next = 0;
  broker = new Broker(plan, {
    reconnectDelayMs: 10,
    onCreate: async (instance, creator, params) => {
      expect(instance).toBe('w');
      const idx = next++;
      const p = await FakePort.listen(join(dir, `w.${idx}.sock`));
      ports.push(p);
      p.handler = kvHandler(new Map([['k', 'v']]), `w${idx}`);
      await broker.attachPort('w', idx, 'kv', p.path);
      await p.connected();
      created.push({ clone: idx, params, creator: `${creator.instance}[${creator.clone}]` });
      return idx;
    },
    onDestroy: (instance, idx) => {
      destroyed.push(idx);
      broker.detachClone(instance, idx);
    },
  });
  const coord = await FakePort.listen(join(dir, 'coord.0.sock'));
  ports.push(coord);
  void broker.attachPort('coord', 0, 'workers', coord.path);
  await coord.connected();
  return { coord, created, destroyed };
}

describe('factory ports in the broker', () => {
  it('creates up to the bound, routes calls by handle, lists and destroys', async () => {
    const { coord, created, destroyed } = await start(farmPlan());
    coord.send({ t: 'create', id: 1, params: { job: 'a' } });
    expect(await coord.next()).toEqual({ t: 'created', id: 1, handle: 0 });
    coord.send({ t: 'create', id: 2, params: { job: 'b', size: 3 } });
    expect(await coord.next()).toEqual({ t: 'created', id: 2, handle: 1 });
    expect(created).toEqual([
      { clone: 0, params: { job: 'a' }, creator: 'coord[0]' },
      { clone: 1, params: { job: 'b', size: 3 }, creator: 'coord[0]' },
    ]);
    // One more than `max` is refused, counted and audited.
    coord.send({ t: 'create', id: 3, params: { job: 'c' } });
    expect(await coord.next()).toMatchObject({ t: 'denied', id: 3, kind: 'factory_bound' });
    // Calls go to the instance named by `to`.
    coord.send({ t: 'call', op: 'get', id: 4, to: 1, body: { key: 'k' } });
    expect(await coord.next()).toEqual({ t: 'reply', id: 4, body: { hit: { key: 'k', value: 'w1:v' } } });
    coord.send({ t: 'call', op: 'get', id: 5, to: 0, body: { key: 'k' } });
    expect(await coord.next()).toEqual({ t: 'reply', id: 5, body: { hit: { key: 'k', value: 'w0:v' } } });
    coord.send({ t: 'call', op: 'get', id: 6, body: { key: 'k' } });
    expect(await coord.next()).toMatchObject({ t: 'denied', id: 6, kind: 'factory_handle' });
    coord.send({ t: 'call', op: 'get', id: 7, to: 9, body: { key: 'k' } });
    expect(await coord.next()).toMatchObject({ t: 'denied', id: 7, kind: 'factory_handle' });
    coord.send({ t: 'list', id: 8 });
    expect(await coord.next()).toEqual({ t: 'instances', id: 8, handles: [0, 1] });
    coord.send({ t: 'destroy', id: 9, handle: 0 });
    expect(await coord.next()).toEqual({ t: 'destroyed', id: 9, handle: 0 });
    expect(destroyed).toEqual([0]);
    coord.send({ t: 'destroy', id: 10, handle: 0 });
    expect(await coord.next()).toMatchObject({ t: 'denied', id: 10, kind: 'factory_handle' });
    // Room again for one.
    coord.send({ t: 'create', id: 11, params: { job: 'd' } });
    expect(await coord.next()).toEqual({ t: 'created', id: 11, handle: 2 });
    expect(broker.violations().map((v) => v.kind)).toEqual(['factory_bound', 'factory_handle', 'factory_handle', 'factory_handle']);
  });

  it('refuses parameters the factory does not list or whose values do not match their types', async () => {
    const { coord, created } = await start(farmPlan());
    coord.send({ t: 'create', id: 1, params: { jbo: 'a' } });
    expect(await coord.next()).toMatchObject({ t: 'denied', id: 1, kind: 'factory_params', reason: 'w takes no parameter "jbo" at creation (it takes job, size)' });
    coord.send({ t: 'create', id: 2, params: { job: 'much too long' } });
    expect(await coord.next()).toMatchObject({ t: 'denied', id: 2, kind: 'factory_params' });
    coord.send({ t: 'create', id: 3, params: { job: 'a', size: 11 } });
    expect(await coord.next()).toMatchObject({ t: 'denied', id: 3, kind: 'factory_params' });
    coord.send({ t: 'create', id: 4, params: [1] });
    expect(await coord.next()).toMatchObject({ t: 'denied', id: 4, kind: 'malformed' });
    expect(created).toEqual([]);
  });

  it('destroys the created instances with their creator, unless detached', async () => {
    const { coord, destroyed } = await start(farmPlan());
    coord.send({ t: 'create', id: 1, params: { job: 'a' } });
    await coord.next();
    coord.send({ t: 'create', id: 2, params: { job: 'b' } });
    await coord.next();
    broker.detachClone('coord', 0);
    expect(destroyed.sort()).toEqual([0, 1]);
  });

  it('keeps the instances of a detached factory when their creator goes', async () => {
    const d = await start(farmPlan(true));
    d.coord.send({ t: 'create', id: 1, params: { job: 'a' } });
    await d.coord.next();
    broker.detachClone('coord', 0);
    expect(d.destroyed).toEqual([]);
  });

  it('delivers the notifications of a created instance to its creator clone only, naming the sender', async () => {
    const { coord } = await start(farmPlan());
    const other = await FakePort.listen(join(dir, 'coord.1.sock'));
    ports.push(other);
    void broker.attachPort('coord', 1, 'workers', other.path);
    await other.connected();
    coord.send({ t: 'create', id: 1, params: { job: 'a' } });
    expect(await coord.next()).toEqual({ t: 'created', id: 1, handle: 0 });
    other.send({ t: 'create', id: 1, params: { job: 'b' } });
    expect(await other.next()).toEqual({ t: 'created', id: 1, handle: 1 });
    // The created clones' own ports are the FakePorts made by onCreate, in creation order.
    const [w0, w1] = ports.filter((p) => /w\.\d\.sock$/.test(p.path));
    w1.send({ t: 'notify', op: 'changed', body: { key: 'k' } });
    expect(await other.next()).toEqual({ t: 'notify', op: 'changed', from: 1, body: { key: 'k' } });
    w0.send({ t: 'notify', op: 'changed', body: { key: 'j' } });
    expect(await coord.next()).toEqual({ t: 'notify', op: 'changed', from: 0, body: { key: 'j' } });
    expect(await other.silent(200)).toBe(true);
    coord.send({ t: 'destroy', id: 2, handle: 0 });
    expect(await coord.next()).toEqual({ t: 'destroyed', id: 2, handle: 0 });
    expect(broker.violations()).toEqual([]);
  });

  it('tells the creator when a created instance is gone without its asking, and frees its place in the bound', async () => {
    const { coord } = await start(farmPlan());
    coord.send({ t: 'create', id: 1, params: { job: 'a' } });
    await coord.next();
    coord.send({ t: 'create', id: 2, params: { job: 'b' } });
    await coord.next();
    expect(broker.createdGone('w', 0, 'its instance was replaced by an apply')).toBe(true);
    expect(await coord.next()).toEqual({ t: 'gone', handle: 0, reason: 'its instance was replaced by an apply' });
    coord.send({ t: 'call', op: 'get', id: 3, to: 0, body: { key: 'k' } });
    expect(await coord.next()).toMatchObject({ t: 'denied', id: 3, kind: 'factory_handle' });
    coord.send({ t: 'create', id: 4, params: { job: 'c' } });
    expect(await coord.next()).toEqual({ t: 'created', id: 4, handle: 2 });
    // Twice, or for a clone no creator owns: nothing to tell.
    expect(broker.createdGone('w', 0, 'again')).toBe(false);
    expect(broker.createdGone('db', 0, 'not created')).toBe(false);
  });

  it('refuses factory frames on a port that is not a factory, and `to` there', async () => {
    const { coord } = await start(farmPlan());
    void coord;
    const client = await FakePort.listen(join(dir, 'client.0.kv.sock'));
    ports.push(client);
    void broker.attachPort('client', 0, 'kv', client.path);
    await client.connected();
    client.send({ t: 'create', id: 1 });
    expect(await client.next()).toMatchObject({ t: 'denied', id: 1, kind: 'factory_handle' });
    client.send({ t: 'call', op: 'get', id: 2, to: 0, body: { key: 'k' } });
    expect(await client.next()).toMatchObject({ t: 'denied', id: 2, kind: 'malformed' });
  });
});
