// One simulated host of the two-host link test (link.netns.test.ts): run in
// the host's network namespace, it holds that host's broker and link over the
// two-host test plan, with a fake guest port: `db.kv` (a key-value provider)
// on host b, `client.kv` (a requester the test drives) on host a. It reads
// commands as JSON lines on stdin and answers each with one JSON line on
// stdout.
//
//   config (the file argv[2] names, JSON): { self: LinkIdentity, peers: LinkPeer[], listen?, dir, pingIntervalMs }
//   {"cmd":"calls","n":N}   N sequential get calls from client: {"ok":K,"errors":[...],"ms":T}
//   {"cmd":"status"}        {"links":[LinkStatus...]}
//   {"cmd":"exit"}

import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { Broker } from '../src/broker';
import { Links, type LinkIdentity, type LinkPeer } from '../src/link';
import { FakePort, kvHandler } from './helpers';
import { twoHostPlan } from './link-helpers';

interface Config {
  self: LinkIdentity;
  peers: LinkPeer[];
  listen?: { host: string; port: number };
  dir: string;
  pingIntervalMs: number;
}

async function main(): Promise<void> {
  const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8')) as Config;
  const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
  const broker = new Broker(twoHostPlan(), { reconnectDelayMs: 10 });
  const links = new Links(broker, { self: cfg.self, peers: cfg.peers, listen: cfg.listen, pingIntervalMs: cfg.pingIntervalMs, reconnectMinMs: 50, reconnectMaxMs: 500 });
  const provider = cfg.self.name === 'b';
  const port = await FakePort.listen(join(cfg.dir, `${cfg.self.name}.sock`));
  if (provider) port.handler = kvHandler();
  void broker.attachPort(provider ? 'db' : 'client', 0, 'kv', port.path);
  await port.connected();
  const { port: listening } = await links.start();
  out({ ready: true, port: listening });
  let nextId = 1;
  for await (const line of createInterface({ input: process.stdin })) {
    const cmd = JSON.parse(line) as { cmd: string; n?: number };
    if (cmd.cmd === 'status') out({ links: links.status() });
    else if (cmd.cmd === 'calls') {
      const t0 = performance.now();
      let ok = 0;
      const errors: string[] = [];
      for (let i = 0; i < (cmd.n ?? 1); i++) {
        const id = nextId++;
        port.send({ t: 'call', op: 'get', id, body: { key: 'k' } });
        const a: Record<string, unknown> = await port.next(5000).catch((e: Error) => ({ t: 'lost', error: e.message }));
        if (a.t === 'reply' && a.id === id) ok++;
        else errors.push(JSON.stringify(a));
      }
      out({ ok, errors, ms: performance.now() - t0 });
    } else if (cmd.cmd === 'exit') break;
  }
  await links.close();
  await broker.close();
  await port.close();
  process.exit(0);
}

main().catch((e: Error) => {
  process.stdout.write(JSON.stringify({ fatal: e.stack ?? String(e) }) + '\n');
  process.exit(1);
});
