// `mclc migrate` between two hosts over SSH, on real QEMU: the requester on
// node1 calls the store on node2 in a tight loop (a put of value N, then a get
// that must return it with the store's own count of puts, N as well); the store's
// clone is moved to node1 while the calls go on. Every call is answered once:
// the requester's numbers have no gap, none failed, and each get returned the
// put just made, counted once by the store (a lost put would return the value
// before it, a put served twice a count ahead of it). The report's figures are
// there and plausible; status on both hosts says where the clone runs;
// `mclc plan` shows the move as drift, not as a change; calls still cross after
// the move; destroy leaves nothing on either host.
//
// The simulated hosts share this machine's template cache (hosts/pair.ts), so
// the destination finds the template built; real hosts would build it there
// from the same content hash first.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostsUnavailable, type SimHost } from './hosts/netns';
import { createPair, until, type Pair } from './hosts/pair';

const unavailable = hostsUnavailable();
if (unavailable) console.warn(`migrate.vm.test.ts skipped: ${unavailable}`);

// The store counts the puts it served and returns the count with the value.
const STORE = `#!/bin/sh
. mcl-msg
count=0
kv() {
  case "$MCL_OP" in
    put)
      count=$((count + 1))
      mcl_field "$MCL_BODY" value value
      mcl_reply '{"ok":true}'
      ;;
    get)
      mcl_str "\${value:-}/$count" v
      mcl_reply "{\\"hit\\":{\\"key\\":\\"k\\",\\"value\\":$v}}"
      ;;
    *) mcl_reply '{"ok":false}' ;;
  esac
}
echo "store: ready"
mcl_serve kv kv
`;

// The requester calls as fast as the store answers, with a short pause; it starts counting once a first get
// crosses (the two hosts' parts are applied one after the other, and the link comes up with the second).
const ASKER = `#!/bin/sh
. mcl-msg
until mcl_call store get '{"key":"k"}'; do sleep 1; done
echo "asker: the store answers"
n=0
while :; do
  n=$((n + 1))
  if mcl_call store put "{\\"key\\":\\"k\\",\\"value\\":\\"v$n\\"}" && mcl_call store get '{"key":"k"}'; then
    echo "asker: ok $n $MCL_REPLY"
  else
    echo "asker: failed $n $MCL_ERROR"
  fi
  usleep 100000 2>/dev/null || sleep 1
done
`;

let pair: Pair;
let h1: SimHost;
let h2: SimHost;

const askerLog = async () => (await pair.mclc(['logs', 'asker', '--host', pair.url(h1)])).stdout;

/** The requester's calls so far: each number, and whether its get returned its own put, counted once. */
async function calls(): Promise<{ n: number; value: number; count: number }[]> {
  const log = await askerLog();
  expect(log).not.toMatch(/asker: failed/);
  return [...log.matchAll(/asker: ok (\d+) \{"hit":\{"key":"k","value":"v(\d+)\/(\d+)"\}\}/g)].map((m) => ({ n: Number(m[1]), value: Number(m[2]), count: Number(m[3]) }));
}

describe.skipIf(unavailable !== null)('mclc migrate: a clone moved between two hosts under a stream of calls (QEMU)', () => {
  beforeAll(async () => {
    pair = await createPair({ 'store.sh': STORE, 'asker.sh': ASKER });
    [h1, h2] = [pair.h1, pair.h2];
  }, 60_000);
  afterAll(async () => {
    await pair?.teardown();
  }, 180_000);

  it('applies the system over both hosts with calls crossing', async () => {
    const plan = await pair.mclc(['plan', 'src', '--out', 'pair.plan']);
    expect(plan.code, plan.stderr).toBe(0);
    const applied = await pair.mclc(['apply', 'pair.plan', '--root', 'src']);
    expect(applied.code, applied.stderr + applied.stdout).toBe(0);
    await until('calls to cross the hosts', async () => ((await calls()).length >= 5 ? true : undefined));
  }, 900_000);

  it('moves the store to node1 while it is called: every call answered once, the figures reported', async () => {
    const before = (await calls()).length;
    const moved = await pair.mclc(['migrate', 'store', '--to', 'node1', '--plan', 'pair.plan', '--json']);
    expect(moved.code, moved.stderr + moved.stdout).toBe(0);
    const lines = moved.stdout.trim().split('\n').map((l) => JSON.parse(l));
    const result = lines.at(-1);
    expect(result).toMatchObject({ type: 'result', instance: 'store', clone: 0, from: 'node2', to: 'node1', mode: 'precopy' });
    // Progress came as events before the result.
    expect(lines.length).toBeGreaterThan(1);
    // Plausible figures: the guest stopped for less than the whole move, the traffic held no longer than the move,
    // something was sent, the clone had private memory, and the client waited at least the move.
    expect(result.downtime_ms).toBeGreaterThan(0);
    expect(result.downtime_ms).toBeLessThanOrEqual(result.total_ms);
    expect(result.hold_ms).toBeLessThanOrEqual(result.total_ms);
    expect(result.bytes_sent).toBeGreaterThan(1024 * 1024);
    expect(result.source_private_bytes).toBeGreaterThan(0);
    expect(result.attempts).toBeGreaterThanOrEqual(1);
    expect(result.elapsed_ms).toBeGreaterThanOrEqual(result.total_ms);
    console.log(`migrate: total ${result.total_ms} ms, downtime ${result.downtime_ms} ms, held ${result.hold_ms} ms, sent ${result.bytes_sent} B, private ${result.source_private_bytes} B, attempts ${result.attempts}, template built ${result.template_built}, elapsed ${result.elapsed_ms} ms (checks ${result.check_ms} ms, destination ready in ${result.prepare_ms} ms)`);
    // Calls go on after the move, crossing to the store at its new place.
    await until('calls after the move', async () => ((await calls()).length >= before + 20 ? true : undefined), 120_000);
    const all = await calls();
    console.log(`migrate: ${all.length} calls answered, ${before} before the move began`);
    all.forEach((c, i) => {
      expect(c.n, `call ${i + 1}`).toBe(i + 1);
      expect(c.value, `call ${c.n}'s get returned another put`).toBe(c.n);
      expect(c.count, `call ${c.n}: the store counted ${c.count} puts`).toBe(c.n);
    });
  }, 600_000);

  it('status says where the clone runs on both hosts, and plan shows the move as drift', async () => {
    const home = await pair.status(h2);
    const clone = home.instances.find((i) => i.id === 'store')!.clones[0];
    expect(clone.moved_to?.target).toBe('node1');
    const text = await pair.mclc(['status', '--host', pair.url(h2)]);
    expect(text.stdout).toMatch(/#0 running on node1, moved by mclc migrate \d{4}-/);
    const dest = await pair.status(h1);
    expect(dest.kept).toEqual([expect.objectContaining({ instance: 'store', clone: 0, from: 'node2', state: 'running' })]);
    const plan = await pair.mclc(['plan', 'src']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/~ store\[0\] moved: node2 -> node1, by mclc migrate/);
    const json = JSON.parse((await pair.mclc(['plan', 'src', '--json', '--detailed-exitcode'])).stdout);
    expect(json.has_changes).toBe(false);
    expect(json.drift).toEqual([expect.objectContaining({ instance: 'store', clone: 0, from: 'node2', to: 'node1' })]);
    // Moving it there again is refused before anything is touched.
    const again = await pair.mclc(['migrate', 'store', '--to', 'node1', '--plan', 'pair.plan']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('store#0 already runs on node1');
  }, 300_000);

  it('destroy leaves nothing on either host', async () => {
    for (const h of [h2, h1]) {
      const d = await pair.mclc(['destroy', '--host', pair.url(h)]);
      expect(d.code, d.stderr).toBe(0);
      expect((await pair.status(h)).deployed).toBe(false);
      await until(`every process on ${h.name} to end`, async () => (pair.hostProcesses(h).length === 0 ? true : undefined), 30_000);
    }
  }, 300_000);
});
