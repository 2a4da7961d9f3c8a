// The guest helper (guest/mcl-msg) run by busybox sh on the host, against the
// broker. A pair of FIFOs stands in for each virtio-serial device: the helper
// reads `<port>.in` and writes `<port>.out`; the test holds both FIFOs open
// read-write (so neither side sees end-of-file when the other closes) and
// attaches them to the broker as one duplex stream.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { Duplex } from 'node:stream';
import { Broker } from '../src/index';
import { FakePort, tempDir, testPlan } from './helpers';

const BUSYBOX = ['/usr/bin/busybox', '/bin/busybox'].find((p) => existsSync(p));
const HELPER = resolve(__dirname, '../guest/mcl-msg');

let dir: string;
let cleanup: () => void;
let broker: Broker;
let bin: string;
const sockets: Socket[] = [];
const fakes: FakePort[] = [];
const children: ReturnType<typeof spawn>[] = [];

/** Makes `<devDir>/<port>.in|.out` and returns the broker's side of them. */
function fifoPort(devDir: string, port: string): Duplex {
  mkdirSync(devDir, { recursive: true });
  const base = join(devDir, port);
  execFileSync('mkfifo', [`${base}.in`, `${base}.out`]);
  const toGuest = new Socket({ fd: openSync(`${base}.in`, 'r+'), readable: false, writable: true });
  const fromGuest = new Socket({ fd: openSync(`${base}.out`, 'r+'), readable: true, writable: false });
  sockets.push(toGuest, fromGuest);
  return Duplex.from({ readable: fromGuest, writable: toGuest });
}

function env(devDir: string): NodeJS.ProcessEnv {
  return { PATH: bin, MCL_DEV_DIR: devDir, MCL_TIMEOUT: '5', TMPDIR: dir, STORE: join(dir, 'store') };
}

function run(devDir: string, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const c = spawn(join(bin, 'mcl-msg'), args, { env: env(devDir) });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('close', (code) => done({ code, stdout, stderr }));
  });
}

const KV_HANDLER = `
body=$(cat)
key=$(mcl-msg field "$body" key) || { echo "no key in $body" >&2; exit 1; }
case $MCL_OP in
put)
  [ "$key" = forbidden ] && { echo "key $key is reserved" >&2; exit 1; }
  mkdir -p "$STORE"
  mcl-msg field "$body" value > "$STORE/$key"
  mcl-msg notify kv changed "{\\"key\\":\\"$key\\"}"
  echo '{"ok":true}'
  ;;
get)
  [ "$key" = garbage ] && { echo 'not json'; exit 0; }
  if [ -f "$STORE/$key" ]; then
    printf '{"hit":{"key":"%s","value":%s}}\\n' "$key" "$(mcl-msg str "$(cat "$STORE/$key")")"
  else
    echo '{"miss":null}'
  fi
  ;;
esac
`;

describe.skipIf(!BUSYBOX)('mcl-msg under busybox sh', () => {
  let dbDev: string;
  let clientDev: string;
  let flood: FakePort;

  beforeAll(async () => {
    ({ dir, cleanup } = tempDir());
    bin = join(dir, 'bin');
    mkdirSync(bin);
    // Only busybox applets on PATH, as in the guest image.
    execFileSync(BUSYBOX!, ['--install', '-s', bin]);
    writeFileSync(join(bin, 'mcl-msg'), `#!${BUSYBOX} sh\nexec ${BUSYBOX} sh ${HELPER} "$@"\n`, { mode: 0o755 });
    writeFileSync(join(dir, 'kv.sh'), KV_HANDLER);
    // Shell handlers fork several processes per call: give the channel a timeout that a loaded machine meets.
    const plan = testPlan();
    plan.channels.find((c) => c.id === 'client.kv->db.kv')!.invariants.timeout_ms = 5000;
    broker = new Broker(plan);
    dbDev = join(dir, 'db');
    clientDev = join(dir, 'client');
    void broker.attachPort('db', 0, 'kv', fifoPort(dbDev, 'kv'));
    void broker.attachPort('client', 0, 'kv', fifoPort(clientDev, 'kv'));
    void broker.attachPort('client', 0, 'loose', fifoPort(clientDev, 'loose'));
    void broker.attachPort('client', 0, 'rep', fifoPort(clientDev, 'rep'));
    flood = await FakePort.listen(join(dir, 'flood.sock'));
    fakes.push(flood);
    void broker.attachPort('flood', 0, 'kv', flood.path);
    await flood.connected();
    const server = spawn(join(bin, 'mcl-msg'), ['serve', 'kv', join(dir, 'kv.sh')], { env: env(dbDev), stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(server);
  });

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await broker.close();
    for (const s of sockets) s.destroy();
    for (const f of fakes) await f.close();
    cleanup();
  });

  it('serves calls with a shell handler and calls them from another guest', async () => {
    let r = await run(clientDev, 'call', 'kv', 'get', '{"key":"a"}');
    expect(r).toMatchObject({ code: 0, stdout: '{"miss":null}\n' });
    r = await run(clientDev, 'call', 'kv', 'put', '{"key":"a","value":"he said \\"hi\\""}');
    expect(r).toMatchObject({ code: 0, stdout: '{"ok":true}\n' });
    r = await run(clientDev, 'call', 'kv', 'get', '{"key":"a"}');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ hit: { key: 'a', value: 'he said "hi"' } });
  });

  it('delivers a notification sent from inside a handler to the other requesters', async () => {
    const r = await run(clientDev, 'call', 'kv', 'put', '{"key":"b","value":"1"}');
    expect(r.code).toBe(0);
    // Earlier puts notified too; the one for b must come.
    let n = await flood.next();
    while ((n.body as { key: string }).key !== 'b') n = await flood.next();
    expect(n).toEqual({ t: 'notify', op: 'changed', body: { key: 'b' } });
  });

  it('reports a provider error with exit code 1 and the handler stderr', async () => {
    const r = await run(clientDev, 'call', 'kv', 'put', '{"key":"forbidden","value":"x"}');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/key forbidden is reserved/);
  });

  it('reports a denied call with exit code 2 and the reason', async () => {
    let r = await run(clientDev, 'call', 'kv', 'get', '{"key":42}');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/denied: get: body.key: expected a string/);
    r = await run(clientDev, 'call', 'kv', 'drop', '{}');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not carried by this channel/);
    r = await run(clientDev, 'call', 'loose', 'get', '{"key":"a"}');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/has no channel/);
    const kinds = broker.violations().filter((v) => v.instance === 'client').map((v) => v.kind);
    expect(kinds).toEqual(['schema', 'unknown_op', 'unwired']);
  });

  it('sends one-way messages and refuses names that are not operations', async () => {
    const r = await run(clientDev, 'send', 'kv', 'log', '{"message":"hello"}');
    expect(r.code).toBe(0);
    const bad = await run(clientDev, 'send', 'kv', 'x"y', '{}');
    expect(bad.code).toBe(4);
    expect(bad.stderr).toMatch(/is not a name/);
    const none = await run(clientDev, 'call', 'nosuchport', 'get', '{}');
    expect(none.code).toBe(4);
    expect(none.stderr).toMatch(/no port nosuchport/);
  });

  it('turns a handler reply that is not JSON into an error for the caller at once', async () => {
    const t0 = Date.now();
    const r = await run(clientDev, 'call', 'kv', 'get', '{"key":"garbage"}');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/reply to get was refused: it is not JSON/);
    // Well before the channel's 5 s timeout.
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(broker.violations().some((v) => v.instance === 'db' && v.kind === 'malformed')).toBe(true);
  });

  it('gives up with exit code 3 when no answer comes within MCL_TIMEOUT', async () => {
    // A replica that takes calls and never answers; the channel's own timeout (2 s) is longer than MCL_TIMEOUT.
    const silent = await FakePort.listen(join(dir, 'rep.sock'));
    fakes.push(silent);
    void broker.attachPort('rep', 0, 'kv', silent.path);
    await silent.connected();
    const t0 = Date.now();
    const r = await new Promise<{ code: number | null; stderr: string }>((done) => {
      const c = spawn(join(bin, 'mcl-msg'), ['call', 'rep', 'get', '{"key":"a"}'], { env: { ...env(clientDev), MCL_TIMEOUT: '1' } });
      let stderr = '';
      c.stderr.on('data', (d) => (stderr += d));
      c.on('close', (code) => done({ code, stderr }));
    });
    // Exit code 3, not 1: the helper gave up before the broker's own 2 s timeout answered.
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/no answer within 1 s/);
    expect(Date.now() - t0).toBeLessThan(4000);
    expect((await silent.next()).op).toBe('get');
  });

  it('opens and closes a session', async () => {
    expect(await run(clientDev, 'open', 'rep')).toMatchObject({ code: 0, stderr: '' });
    expect(await run(clientDev, 'close', 'rep')).toMatchObject({ code: 0, stderr: '' });
  });

  it('extracts fields and escapes strings for handlers', () => {
    const f = (json: string, name: string) => spawnSync(join(bin, 'mcl-msg'), ['field', json, name], { env: env(clientDev), encoding: 'utf8' });
    expect(f('{"x": "y"}', 'x').stdout).toBe('y\n');
    expect(f('{"a":{"n":-12.5,"b":true}}', 'n').stdout).toBe('-12.5\n');
    expect(f('{"s":"a\\"b\\\\"}', 's').stdout).toBe('a"b\\\n');
    expect(f('{"a":1}', 'missing').status).toBe(1);
    const s = spawnSync(join(bin, 'mcl-msg'), ['str', 'tab\tquote" back\\ line\nbell\u0007'], { env: env(clientDev), encoding: 'utf8' });
    // Tabs and newlines are escaped; other control characters cannot stand in a JSON string and are dropped.
    expect(s.stdout).toBe('"tab\\tquote\\" back\\\\ line\\nbell"\n');
    expect(JSON.parse(s.stdout)).toBe('tab\tquote" back\\ line\nbell');
  });
});

// The same operations as shell functions, sourced by the program (`. mcl-msg`):
// one server process whose handler is a function, one client process that
// makes every call over the same open port.
const LIB_SERVER = `
. mcl-msg
# Keys are [a-z0-9]+ (the channel's schema), so each can name a variable.
kv() {
  case $MCL_KIND.$MCL_OP in
  send.log)
    mcl_field "$MCL_BODY" message m
    echo "log: $m" >>"$TMPDIR/sends"
    ;;
  call.put)
    mcl_field "$MCL_BODY" key key
    [ "$key" = forbidden ] && { mcl_error "key \\"$key\\" is reserved"; return; }
    mcl_field "$MCL_BODY" value value
    eval "kv_$key=\\$value"
    mcl_notify kv changed "{\\"key\\":\\"$key\\"}"
    mcl_reply '{"ok":true}'
    ;;
  call.get)
    mcl_field "$MCL_BODY" key key
    # A handler that answers nothing: the library answers with an error.
    [ "$key" = silent ] && return 3
    eval "value=\\\${kv_$key-}"
    if [ -n "$value" ]; then
      mcl_str "$value" lit
      mcl_reply "{\\"hit\\":{\\"key\\":\\"$key\\",\\"value\\":$lit}}"
    else
      mcl_reply '"miss"'
    fi
    ;;
  esac
}
mcl_serve kv kv
`;

const LIB_CLIENT = `
. mcl-msg
show() { echo "$1 $2 [$MCL_REPLY] [$MCL_ERROR]"; }
# The first call opens the port inside a redirection, which must not disturb it.
mcl_call kv get '{"key":"a"}' 2>/dev/null; show miss $?
mcl_call kv put '{"key":"a","value":"he said \\"hi\\""}'; show put $?
mcl_call kv get '{"key":"a"}'; show hit $?
mcl_call kv put '{"key":"forbidden","value":"x"}'; show error $?
mcl_call kv get '{"key":42}'; show denied $?
mcl_call kv get '{"key":"silent"}'; show unanswered $?
mcl_send kv log '{"message":"hello"}'; echo "send $?"
mcl_call kv get '{"key":"a"}'; mcl_field "$MCL_REPLY" value v; echo "field $? $v"
mcl_call nosuchport get; echo "no port $?"
mcl_call kv 'x"y'; echo "bad op $?"
`;

describe.skipIf(!BUSYBOX)('mcl-msg sourced as a library', () => {
  let libBroker: Broker;
  let libDir: string;
  let libCleanup: () => void;
  let libBin: string;
  let flood: FakePort;
  const procs: ReturnType<typeof spawn>[] = [];

  beforeAll(async () => {
    ({ dir: libDir, cleanup: libCleanup } = tempDir());
    libBin = join(libDir, 'bin');
    mkdirSync(libBin);
    execFileSync(BUSYBOX!, ['--install', '-s', libBin]);
    // As in the image: on PATH under its own name, so that `. mcl-msg` finds it.
    execFileSync('cp', [HELPER, join(libBin, 'mcl-msg')]);
    writeFileSync(join(libDir, 'server.sh'), LIB_SERVER);
    writeFileSync(join(libDir, 'client.sh'), LIB_CLIENT);
    const plan = testPlan();
    plan.channels.find((c) => c.id === 'client.kv->db.kv')!.invariants.timeout_ms = 5000;
    libBroker = new Broker(plan);
    void libBroker.attachPort('db', 0, 'kv', fifoPort(join(libDir, 'db'), 'kv'));
    void libBroker.attachPort('client', 0, 'kv', fifoPort(join(libDir, 'client'), 'kv'));
    flood = await FakePort.listen(join(libDir, 'flood.sock'));
    void libBroker.attachPort('flood', 0, 'kv', flood.path);
    await flood.connected();
    const env = { PATH: libBin, MCL_DEV_DIR: join(libDir, 'db'), TMPDIR: libDir };
    procs.push(spawn(BUSYBOX!, ['sh', join(libDir, 'server.sh')], { env, stdio: ['ignore', 'ignore', 'pipe'] }));
  });

  afterAll(async () => {
    for (const c of procs) c.kill('SIGKILL');
    await libBroker.close();
    await flood.close();
    libCleanup();
  });

  it('serves with a shell function and calls over one open port, with the status and text of every outcome', async () => {
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
      const c = spawn(BUSYBOX!, ['sh', join(libDir, 'client.sh')], { env: { PATH: libBin, MCL_DEV_DIR: join(libDir, 'client'), MCL_TIMEOUT: '5', TMPDIR: libDir } });
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (d) => (stdout += d));
      c.stderr.on('data', (d) => (stderr += d));
      c.on('close', (code) => done({ code, stdout, stderr }));
    });
    expect(r.stdout.split('\n')).toEqual([
      'miss 0 ["miss"] []',
      'put 0 [{"ok":true}] []',
      'hit 0 [{"hit":{"key":"a","value":"he said \\"hi\\""}}] []',
      'error 1 [] [key \\"forbidden\\" is reserved]',
      'denied 2 [] [get: body.key: expected a string, got 42]',
      'unanswered 1 [] [the handler of get returned status 3 without an answer]',
      'send 0',
      'field 0 he said "hi"',
      'no port 4',
      'bad op 4',
      '',
    ]);
    expect(r.stderr).toMatch(/no port nosuchport/);
    expect(r.stderr).toMatch(/operation x"y is not a name/);
    // The notification sent from inside the handler reached the other requester of the store.
    expect(await flood.next()).toEqual({ t: 'notify', op: 'changed', body: { key: 'a' } });
    expect(readFileSync(join(libDir, 'sends'), 'utf8')).toBe('log: hello\n');
  });
});
