// The supervisor's control socket against peers that send one endless line
// (no supervisor, no VM): either end gives up at its cap instead of buffering.

import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { callControl, CONTROL_SOCKET_MAX_LINE_BYTES, serveControl } from '../src/lifecycle/control';
import { MAX_STATE_BYTES } from '@mcl/plan/state-store';
import { flood } from './fixtures/flood';

const CAP = 64 * 1024;
let dir: string;
let server: net.Server | null = null;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'mcl-ctl-'));
});
afterEach(async () => {
  server?.close();
  server = null;
  await rm(dir, { recursive: true, force: true });
});

describe('the control socket', () => {
  it('is capped at the largest state, the largest message it carries', () => {
    expect(CONTROL_SOCKET_MAX_LINE_BYTES).toBe(MAX_STATE_BYTES);
  });

  it('the supervisor answers a request longer than the cap with an error and closes the connection', async () => {
    const p = path.join(dir, 'ctl');
    let handled = 0;
    server = serveControl(
      p,
      async () => {
        handled++;
        return null;
      },
      () => undefined,
      CAP,
    );
    await new Promise((r) => server!.once('listening', r));
    const sock = net.connect(p);
    let reply = '';
    sock.on('data', (d: Buffer) => (reply += d.toString('utf8')));
    await new Promise((r) => sock.once('connect', r));
    const sent = await flood(sock, 64 * 1024 * 1024);
    expect(sent).toBeLessThan(16 * 1024 * 1024);
    expect(JSON.parse(reply.split('\n')[0])).toEqual({ error: { kind: 'failure', message: expect.stringContaining(`control request of more than ${CAP} bytes`) } });
    expect(handled).toBe(0);
  });

  it('the client gives up on a reply line longer than the cap', async () => {
    const p = path.join(dir, 'ctl');
    let flooded: Promise<number> | null = null;
    server = net.createServer((sock) => {
      flooded = flood(sock, 64 * 1024 * 1024);
    });
    server.listen(p);
    await new Promise((r) => server!.once('listening', r));
    await expect(callControl(p, { op: 'status' }, undefined, undefined, CAP)).rejects.toMatchObject({
      kind: 'failure',
      message: expect.stringContaining(`the supervisor sent a line of more than ${CAP} bytes`),
    });
    expect(await flooded!).toBeLessThan(16 * 1024 * 1024);
  });
});
