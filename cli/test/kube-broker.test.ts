// `mclc __kube-broker` as the rendered Deployment runs it: the bundled mclc
// started on a kubevirt plan, with a fake guest on loopback in place of the
// machine's pod address. The broker itself is tested in
// backends/kubevirt/test/broker-run.test.ts.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { prettyJson } from '@mcl/plan';
import { GUEST_PORT_BASE, vmName } from '@mcl/backend-kubevirt/render';
import { guestToken } from '../../backends/kubevirt/src/guest-control';
import { examplePlan } from '../../backends/kubevirt/test/plans';

const repo = join(__dirname, '..', '..');
const bundle = join(repo, 'cli/dist/mclc.mjs');
const tmp = mkdtempSync(join(tmpdir(), 'mclc-kube-broker-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const plan = examplePlan('webstack').plan!;
writeFileSync(join(tmp, 'shop.plan'), prettyJson(plan));
writeFileSync(join(tmp, 'key'), Buffer.alloc(32, 3));

function mclc(args: string[]) {
  const child = spawn(process.execPath, [bundle, ...args], { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, out: () => stdout, err: () => stderr };
}

async function until(what: () => boolean, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!what()) {
    if (Date.now() - t0 > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('mclc __kube-broker', () => {
  it('verifies the plan, dials the guests, serves the exposures, and exits cleanly on SIGTERM', async () => {
    const web = plan.instances.find((i) => i.ports.some((p) => p.exposed_on === 8080))!;
    const slot = web.ports.find((p) => p.exposed_on === 8080)!.slot;
    const guest = createServer();
    let accepted = 0;
    let greeting = '';
    guest.on('connection', (s) => {
      accepted++;
      s.on('data', (d) => (greeting += d));
      s.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => guest.listen(0, '127.0.0.1', resolve));
    const gport = (guest.address() as { port: number }).port;
    const b = mclc([
      '__kube-broker', '--plan', 'shop.plan', '--key', 'key', '--guests', 'mcl-guests.shop.svc.invalid', '--listen', '127.0.0.1', '--status-port', '0',
      '--port-map', '8080=0', '--guest-map', `${vmName(web, 0)}:${GUEST_PORT_BASE + slot}=127.0.0.1:${gport}`,
    ]);
    try {
      await until(() => b.out().includes('serving') && accepted > 0 && greeting.includes('\n'));
      // The guest is greeted with its token, derived from the key file.
      expect(greeting).toBe(`auth ${guestToken(Buffer.alloc(32, 3), vmName(web, 0))}\n`);
      const serving = JSON.parse(b.out().split('\n').find((l) => l.includes('serving'))!);
      expect(serving.exposures).toEqual([expect.stringMatching(new RegExp(`^127\\.0\\.0\\.1:\\d+ -> ${web.id.replace(/\./g, '\\.')}\\.http$`))]);
      b.child.kill('SIGTERM');
      expect(await b.exited).toBe(0);
      expect(b.out()).toMatch(/SIGTERM received/);
      expect(b.out()).toMatch(/"message":"broker stopped"/);
    } finally {
      b.child.kill('SIGKILL');
      guest.close();
    }
  }, 20_000);

  it('refuses an edited plan before serving anything', async () => {
    const edited = JSON.parse(prettyJson(plan));
    edited.channels[0].invariants.max_message_bytes = 1 << 24;
    writeFileSync(join(tmp, 'edited.plan'), JSON.stringify(edited));
    const b = mclc(['__kube-broker', '--plan', 'edited.plan', '--key', 'key', '--guests', 'x', '--listen', '127.0.0.1', '--status-port', '0', '--port-map', '8080=0']);
    expect(await b.exited).toBe(1);
    expect(b.err()).toMatch(/digests do not match|changed after planning/);
    expect(b.out()).toBe('');
  }, 20_000);

  it('refuses to start without the deployment\'s key, saying how to create it', async () => {
    writeFileSync(join(tmp, 'short-key'), 'abc');
    for (const [key, why] of [['absent-key', /cannot read the deployment's key .*absent-key: ENOENT/], ['short-key', /has 3 bytes; it needs 16 to 4096/]] as const) {
      const b = mclc(['__kube-broker', '--plan', 'shop.plan', '--key', key, '--guests', 'x', '--listen', '127.0.0.1', '--status-port', '0', '--port-map', '8080=0']);
      expect(await b.exited).toBe(1);
      expect(b.err()).toMatch(why);
      expect(b.out()).toBe('');
    }
    const b = mclc(['__kube-broker', '--plan', 'shop.plan', '--key', 'absent-key', '--guests', 'x']);
    await b.exited;
    expect(b.err()).toMatch(/create secret generic mcl-broker-key/);
  }, 20_000);
});
