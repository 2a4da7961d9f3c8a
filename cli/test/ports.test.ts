// The exposure port check of `mclc plan`, against real listeners on real
// ports of this host.

import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Plan } from '@mcl/plan';
import { run } from '../src/cli';
import { tryBind } from '@mcl/broker/ports';
import { checkExposurePorts, EXPOSURE_HOST, findListener } from '../src/ports';
import { stateOf, webstackPlan } from '../../plan/test/fixtures';
import { captureContext } from './capture';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'mclc-ports-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const servers: Server[] = [];
/** Listens on a free port of the exposure host and returns it. */
async function listener(): Promise<number> {
  const s = createServer();
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, EXPOSURE_HOST, r));
  return (s.address() as { port: number }).port;
}
/** A port that was free a moment ago (bound and released again). */
async function freePort(): Promise<number> {
  const port = await listener();
  await new Promise((r) => servers.pop()!.close(r));
  return port;
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

const planOn = (port: number): Plan => {
  const p = webstackPlan();
  p.exposures = [{ ...p.exposures[0], host_port: port }];
  return p;
};

describe('checkExposurePorts', () => {
  it('reports a port another program listens on, naming the exposure, the listener and what to do', async () => {
    const port = await listener();
    const [c, ...rest] = await checkExposurePorts(planOn(port), null);
    expect(rest).toEqual([]);
    expect(c).toMatchObject({ host_port: port, address: '127.0.0.1', exposure: 'web.http', instance: 'web', port: 'http', error: 'EADDRINUSE' });
    // The listener is this very test process.
    expect(c.holder?.pid).toBe(process.pid);
    expect(c.message).toContain(`tcp ${port} of exposure web.http is in use on 127.0.0.1 by `);
    expect(c.message).toContain(`(pid ${process.pid})`);
    expect(c.hint).toContain(`Stop the program listening on 127.0.0.1:${port}`);
    expect(c.hint).toContain(`choose another port for web.http in the source`);
  });

  it('reports nothing for a free port, and leaves it free', async () => {
    const port = await freePort();
    expect(await checkExposurePorts(planOn(port), null)).toEqual([]);
    expect(await tryBind(EXPOSURE_HOST, port)).toBeNull();
  });

  it('counts the ports the current state already exposes as the deployment’s own', async () => {
    const port = await listener();
    const plan = planOn(port);
    expect(await checkExposurePorts(plan, stateOf(plan))).toEqual([]);
    // A state exposing other ports does not make this one ours.
    expect(await checkExposurePorts(plan, stateOf(planOn(port + 1 === 65536 ? port - 1 : port + 1)))).toHaveLength(1);
  });

  it('finds the process listening on a port, and nobody on a free one', async () => {
    const port = await listener();
    expect(findListener(port)).toEqual({ pid: process.pid, command: expect.any(String) });
    expect(findListener(await freePort())).toBeNull();
  });
});

describe('mclc plan', () => {
  let ws: string;
  let port: number;
  beforeAll(() => {
    ws = join(tmp, 'shop');
    cpSync(join(fixtures, 'shop'), ws, { recursive: true });
  });
  const usePort = (p: number) => {
    const src = join(ws, 'shop.mcl');
    writeFileSync(src, readFileSync(src, 'utf8').replace(/on tcp \d+/, `on tcp ${p}`));
  };

  it('warns about an exposure port in use, on stderr with a hint, and still exits 0', async () => {
    port = await listener();
    usePort(port);
    const ctx = captureContext(ws);
    expect(await run(['plan', '--detailed-exitcode'], ctx)).toBe(2);
    expect(ctx.stderr).toContain(`warning: tcp ${port} of exposure web.http is in use on 127.0.0.1 by `);
    expect(ctx.stderr).toMatch(new RegExp(`\\n  hint: Stop the program listening on 127\\.0\\.0\\.1:${port}, or choose another port for web\\.http in the source`));
    expect(ctx.stdout).not.toContain('in use');
    const plain = captureContext(ws);
    expect(await run(['plan'], plain)).toBe(0);
  });

  it('carries the warning in --json, and nothing once the port is free', async () => {
    port = await listener();
    usePort(port);
    const ctx = captureContext(ws);
    expect(await run(['plan', '--json'], ctx)).toBe(0);
    expect(ctx.stderr).toBe('');
    const doc = JSON.parse(ctx.stdout);
    expect(doc.port_warnings).toEqual([
      expect.objectContaining({ host_port: port, address: '127.0.0.1', exposure: 'web.http', instance: 'web', port: 'http', error: 'EADDRINUSE', holder: expect.objectContaining({ pid: process.pid }) }),
    ]);
    expect(doc.port_warnings[0].hint).toMatch(/choose another port/);

    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
    const free = captureContext(ws);
    expect(await run(['plan', '--json'], free)).toBe(0);
    expect(JSON.parse(free.stdout).port_warnings).toEqual([]);
  });

  it('does not warn about a port the deployment in the state already exposes', async () => {
    port = await listener();
    usePort(port);
    const first = captureContext(ws);
    await run(['plan', '--out', join(tmp, 'shop.plan')], first);
    const plan = JSON.parse(readFileSync(join(tmp, 'shop.plan'), 'utf8')) as Plan;
    mkdirSync(join(ws, '.mcl'), { recursive: true });
    writeFileSync(join(ws, '.mcl', 'state.json'), JSON.stringify(stateOf(plan)));
    try {
      const ctx = captureContext(ws);
      expect(await run(['plan', '--json'], ctx)).toBe(0);
      expect(JSON.parse(ctx.stdout).port_warnings).toEqual([]);
    } finally {
      rmSync(join(ws, '.mcl'), { recursive: true, force: true });
    }
  });
});
