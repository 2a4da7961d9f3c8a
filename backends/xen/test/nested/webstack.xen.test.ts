// The webstack example on real Xen (spec/xen-testing.md): Debian's Xen 4.17
// booted nested under QEMU TCG, this repository's mclc and Xen backend in its
// dom0. `mclc plan` and `mclc apply` of examples/webstack with its target
// switched to `backend xen`; an HTTP request from this host through web ->
// auth -> handler -> app -> db and back over vchans and the broker; refused
// frames counted in `mclc status`; a guest killed with `xl destroy` brought
// back by its restart policy; `mclc destroy` leaving no domain but dom0.
// Restore path only: TCG has no VT-x, so the hypervisor cannot fork.
//
// Slow (several minutes on two cores), so not part of `npm test`: run it with
// `npm run test:xen` (vitest.config.ts includes *.xen.test.ts only with
// MCL_TEST_XEN=1).

import { readFileSync, readdirSync, statSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CpioEntry } from '../../../kvm/src/image/cpio';
import { repoRoot } from '../../../kvm/test/fixtures/plans';
import { NestedXen } from './harness';
import { MCL_ENV, mclFiles } from './mcl-dom0';

const WS = '/root/webstack';
const PORT = 8080;
let nx: NestedXen;
let hostPort: number;
const auth = { authorization: 'Bearer demo-token' };

/** The example's files, its target switched to the Xen backend. */
function workspace(): CpioEntry[] {
  const root = path.join(repoRoot, 'examples', 'webstack');
  const out: CpioEntry[] = [];
  const walk = (dir: string, rel: string) => {
    for (const n of readdirSync(dir).sort()) {
      const p = path.join(dir, n);
      if (statSync(p).isDirectory()) walk(p, `${rel}/${n}`);
      else if (n !== 'webstack.plan.json') {
        let data = readFileSync(p);
        if (n === 'webstack.mcl') {
          const text = data.toString('utf8');
          if (!/backend kvm/.test(text)) throw new Error('examples/webstack/webstack.mcl no longer says `backend kvm`');
          data = Buffer.from(text.replace('backend kvm', 'backend xen'));
        }
        out.push({ kind: 'file', path: `${rel}/${n}`.slice(1), mode: 0o644, data });
      }
    }
  };
  walk(root, WS);
  return out;
}

/** Runs mclc in dom0's workspace; returns stdout, throws with its output when it fails. */
async function mclc(args: string[], timeoutMs = 120_000): Promise<string> {
  const r = await nx.exec(['/usr/local/bin/mclc', ...args], { cwd: WS, env: MCL_ENV, timeoutMs });
  if (r.code !== 0) throw new Error(`mclc ${args.join(' ')}: ${r.timedOut ? 'timed out' : `exit ${r.code ?? r.signal}`}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

interface Status {
  instances: { id: string; clones: { index: number; state: string; restarts: number; pid?: number; rss_bytes?: number; last_exit?: string }[] }[];
  channels: { id: string; violations: number; frames_forward: number; recent_violations: { kind: string }[] }[];
}

async function status(): Promise<Status> {
  return JSON.parse(await mclc(['status', '--json'])) as Status;
}

function request(pathname: string, o: { method?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: hostPort, path: pathname, method: o.method ?? 'GET', headers: o.headers, timeout: 120_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to ${pathname} within 120 s`)));
    req.on('error', reject);
    req.end();
  });
}

async function until<T>(what: string, ms: number, fn: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function domains(): Promise<string[]> {
  return (await nx.sh('xl list')).split('\n').slice(1).filter(Boolean).map((l) => l.split(/\s+/)[0]);
}

describe('webstack on nested Xen', () => {
  beforeAll(async () => {
    nx = await NestedXen.start({
      files: [...(await mclFiles()), ...workspace()],
      forwards: [PORT],
      // Dom0 (node, the supervisor, the broker, the saved template image), seven guests of 128 MiB, Xen's own.
      dom0MemMiB: 1536,
      memoryMiB: 3584,
      deadlineMs: 90 * 60_000,
      log: (l) => console.log(`nested xen: ${l}`),
    });
    try {
      await planAndApply();
    } catch (e) {
      // What dom0 knows of the failure, before the test bed (and dom0 with it) goes away.
      console.log(`nested xen: dom0 after the failure:\n${await diagnosis()}`);
      throw e;
    }
    hostPort = await nx.hostPort(PORT);
  }, 3_300_000);

  /** What dom0 knows: the domains, Xen's log, the supervisor's log and the guest consoles (each cut to its end). */
  const diagnosis = () =>
    nx
      .sh('xl list; echo "== xl dmesg"; xl dmesg | tail -n 40; echo "== supervisor.log"; tail -n 60 .mcl/run/supervisor.log; for f in /var/log/xen/console/*.log; do echo "== $f"; tail -n 60 "$f"; done', { cwd: WS })
      .catch((d: Error) => d.message);

  afterEach(async (ctx) => {
    if (nx && ctx.task.result?.state === 'fail') console.log(`nested xen: dom0 after the failure of "${ctx.task.name}":\n${await diagnosis()}`);
  }, 300_000);

  async function planAndApply(): Promise<void> {
    const t0 = Date.now();
    await mclc(['plan', '.', '--out', 'shop.plan'], 300_000);
    // The supervisor's start is bounded by the Xen backend's own bound (MCL_XEN_SUPERVISOR_START_MS in MCL_ENV).
    // Seven restores in a row at 4-6 minutes each at load 15-20: 45 minutes (an idle machine needs 4).
    const applied = await mclc(['apply', 'shop.plan', '--ready-timeout', '15m'], 2_700_000);
    console.log(`nested xen: mclc plan and apply took ${((Date.now() - t0) / 1000).toFixed(0)} s\n${applied}`);
    // The backend's own timings (template boot and park, each restore: the toolstack's part and the guest's), for the record.
    const timings = await nx.sh("grep -E 'xen: .*(cold boot to ready|restored and|restore [0-9]+ of)' .mcl/run/supervisor.log | tail -n 40", { cwd: WS }).catch((e: Error) => e.message);
    console.log(`nested xen: the backend's timings in dom0:\n${timings}`);
  }

  afterAll(async () => {
    if (!nx) return;
    await nx.close();
  }, 120_000);

  it('runs every instance as a domain of the restore path', async () => {
    // Doctor exits non-zero for the KVM checks dom0 cannot pass (no QEMU there); its Xen lines are what count.
    const doctor = await nx.exec(['/usr/local/bin/mclc', 'doctor'], { cwd: WS, env: MCL_ENV, timeoutMs: 120_000 });
    expect(doctor.stdout).toMatch(/instances are restored from the parked template's image, not forked/);
    const names = await domains();
    // Six instances, the app twice: seven domains besides dom0 (the template was saved, so it holds no domain).
    expect(names.filter((n) => n !== 'Domain-0').length).toBeGreaterThanOrEqual(7);
    // Status shows every clone running, with its memory from the hypervisor (tot_pages) and its domain's CPU time.
    const s = await status();
    const clones = s.instances.flatMap((i) => i.clones.map((c) => ({ id: i.id, ...c })));
    console.log(`nested xen: memory per clone (tot_pages x 4 KiB, from mclc status): ${clones.map((c) => `${c.id}.${c.index} ${((c.rss_bytes ?? 0) / 1048576).toFixed(1)} MiB`).join(', ')}`);
    expect(clones.length).toBeGreaterThanOrEqual(7);
    for (const c of clones) {
      expect(c.state).toBe('running');
      expect(c.rss_bytes).toBeGreaterThan(0);
    }
  }, 300_000);

  it('serves an HTTP request from the host through web, auth, handler, app and db', async () => {
    expect((await request('/')).body).toMatch(/mcl webstack/);
    // The example's channels time out after 2-5 s, which four guests of a guest on a loaded machine can overrun
    // on their first calls: the chain is first asked for an order that does not exist until it answers 404
    // (web, auth, handler, app and db all answered), and an order placed again when its call timed out (502).
    await until('the chain web -> auth -> handler -> app -> db answering', 600_000, async () => ((await request('/orders/0', { headers: auth })).status === 404 ? true : undefined));
    const placed = await until('an order placed', 600_000, async () => {
      const r = await request('/orders?item=book&quantity=2', { method: 'POST', headers: auth });
      return r.status === 201 ? r : undefined;
    });
    const id = /^\{"id":"(\d+)"\}\n$/.exec(placed.body)?.[1];
    expect(id).toBeDefined();
    const got = await request(`/orders/${id}`, { headers: auth });
    expect(got).toEqual({ status: 200, body: '{"user":"alice","item":"book","quantity":2}\n' });
  }, 600_000);

  it('counts refused frames in status and keeps the channel working', async () => {
    const r = await request('/probe');
    // The example waits 3 s for each denial before its good call; under load the first denial can come later,
    // as the reply the good call reads. Either way the broker refused the malformed line, and status counts it.
    expect(r.body).toMatch(/denied \(malformed\)|then a good call: \{"t":"denied","kind":"malformed"/);
    expect(r.body).toMatch(/then a good call/);
    const s = await status();
    const ch = s.channels.find((c) => c.id === 'web.auth->auth.auth')!;
    expect(ch.violations).toBeGreaterThanOrEqual(3);
    expect(ch.recent_violations.map((v) => v.kind)).toEqual(expect.arrayContaining(['malformed', 'schema', 'unknown_op']));
  }, 600_000);

  it('brings a guest killed with xl destroy back by its restart policy', async () => {
    // Clone domains are named mcl-<deployment tag>-<instance>.<clone>.
    const before = (await domains()).filter((n) => /^mcl-[0-9a-f]+-db\.0$/.test(n));
    expect(before.length).toBe(1);
    await nx.sh(`xl destroy ${before[0]}`, { timeoutMs: 120_000 });
    const s = await until('db restarted', 900_000, async () => {
      const st = await status();
      const db = st.instances.find((i) => i.id === 'db')!.clones[0];
      return db?.state === 'running' && db.restarts >= 1 ? st : undefined;
    });
    expect(s.instances.find((i) => i.id === 'db')!.clones[0].restarts).toBe(1);
    const placed = await until('an order placed after the restart', 600_000, async () => {
      const r = await request('/orders?item=mug&quantity=1', { method: 'POST', headers: auth });
      return r.status === 201 ? r : undefined;
    });
    expect(placed.body).toMatch(/^\{"id":"\d+"\}/);
  }, 1_800_000);

  it('restores again a guest that dies while it resumes (the restore retry), within one restart', async () => {
    // The db domain is destroyed, and so is the domain of its restore as soon as xl has made it: before its agent
    // answered (or while xl restore still runs). The backend restores it again within the same restart
    // (MCL_XEN_RESTORE_ATTEMPTS), as it does for a guest that panics while resuming.
    const name = (await domains()).find((n) => /^mcl-[0-9a-f]+-db\.0$/.test(n))!;
    const killed = await nx.sh(
      [
        `old=$(xl domid ${name})`,
        'xl destroy "$old"',
        'i=0',
        'while [ $i -lt 3000 ]; do',
        `  d=$(xl domid ${name} 2>/dev/null)`,
        '  if [ -n "$d" ] && [ "$d" != "$old" ]; then xl destroy "$d" && echo "destroyed d$d while it resumed"; exit 0; fi',
        '  sleep 0.2; i=$((i + 1))',
        'done',
        'exit 1',
      ].join('\n'),
      { timeoutMs: 900_000 },
    );
    console.log(`nested xen: ${killed.trim()}`);
    const s = await until('db back after its restore was retried', 1_200_000, async () => {
      const st = await status();
      const db = st.instances.find((i) => i.id === 'db')!.clones[0];
      return db?.state === 'running' && db.restarts >= 2 ? st : undefined;
    });
    // One restart of the policy (the retry is within it), and the retry in the supervisor's log.
    expect(s.instances.find((i) => i.id === 'db')!.clones[0].restarts).toBe(2);
    const log = await nx.sh(`grep -E 'db\\.0: restore 1 of [0-9]+ (died while resuming|failed)' .mcl/run/supervisor.log`, { cwd: WS });
    console.log(`nested xen: ${log.trim()}`);
    const placed = await until('an order placed after the retried restore', 600_000, async () => {
      const r = await request('/orders?item=pen&quantity=3', { method: 'POST', headers: auth });
      return r.status === 201 ? r : undefined;
    });
    expect(placed.body).toMatch(/^\{"id":"\d+"\}/);
  }, 2_400_000);

  it('destroys the deployment and leaves no domain but dom0', async () => {
    await mclc(['destroy'], 600_000);
    expect(await domains()).toEqual(['Domain-0']);
  }, 900_000);
});
