// Exposures: the host TCP listeners of a plan's exposed ports. A port whose
// protocol is std.http.Http speaks HTTP/1.1; any other speaks line-JSON
// frames, one session per TCP connection. Each exposure is a channel of the
// broker (its rules, budgets and counters are the broker's); this module owns
// the listeners, the connections and their limits (connections.ts), and turns
// what a client sends into requests the broker checks and forwards.

import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Plan } from '@mcl/plan';
import type { Budget, OpRt } from './admit';
import { ConnectionTable, DEFAULT_CONNECTION_LIMITS, type ConnectionLimits, type ConnectionStats } from './connections';
import { envelope, prefixBody, snippet } from './frames';
import { HTTP_MAX_BODY, isHttpProtocol, readBody, toRequestMessage, writeBrokerError, writeResponseMessage } from './http';
import { LineSplitter } from './lines';
import { DEFAULT_EXPOSURE_HOST } from './ports';
import type { Sessions } from './sessions';
import { byRequester, DROP_WATER, type Answer, type ChannelRt, type Offence, type PortConn, type Requester } from './state';
import { chunkBytes, chunks, isStreamProtocol, STREAM_CLIENT_WATER, Throttle } from './streams';
import type { BrokerLogEntry, BrokerOptions, ExposureInfo } from './types';

/** How long an HTTP request (head and body) may take to arrive, at least; the head alone has the shorter header timeout. */
const REQUEST_TIMEOUT_MS = 60_000;

/** What exposures need of the broker: its plan and options, its checks and its routing. */
export interface ExposureHost {
  readonly plan: Plan;
  readonly options: Pick<BrokerOptions, 'exposureHost' | 'mapHostPort' | 'exposureLimits'>;
  readonly sessions: Sessions;
  /** The channel of the exposure on a planned host port. */
  exposureChannel(hostPort: number): ChannelRt | undefined;
  closed(): boolean;
  violation(o: Offence): void;
  log(e: BrokerLogEntry): void;
  /** Runs the handling of one frame so that a bug in it costs that frame only. */
  guard(what: string, fn: () => void): void;
  /** Runs the processing of one received chunk with its destinations corked. */
  batch(fn: () => void): void;
  write(s: Duplex, line: string): void;
  budget(ch: ChannelRt, clone: number): Budget;
  /** Registers a socket whose lines are checked, so that its violations are budgeted. */
  addSender(stream: Duplex, splitter: LineSplitter): void;
  endOrder(req: Requester, why: string): void;
  fromRequester(req: Requester, frame: unknown, conn: PortConn | null): void;
  forwardCall(req: Requester, op: OpRt, bodyJson: string, respond: (a: Answer) => void): void;
}

export class Exposures {
  private readonly servers: (HttpServer | TcpServer)[] = [];
  private readonly tcpSockets = new Set<Socket>();
  /** Each exposure's connections, by exposure id. */
  private readonly connTables = new Map<string, ConnectionTable>();
  private readonly limits: ConnectionLimits;
  private sweepTimer: NodeJS.Timeout | null = null;
  private listening: Promise<ExposureInfo[]> | null = null;
  /** The exposures listening, by planned host port. */
  private readonly openExposures = new Map<number, ExposureInfo>();
  /** The next number of a byte-stream connection (unique across the broker's exposures). */
  private nextConn = 0;
  /** Whether the clients are held (pause() until resume()): a bandwidth throttle must not resume them. */
  private held = false;

  constructor(private readonly host: ExposureHost) {
    this.limits = { ...DEFAULT_CONNECTION_LIMITS, ...host.options.exposureLimits };
  }

  /** The figures of an exposure's connections, by its id (undefined for a channel, or before it listens). */
  connectionStats(id: string): ConnectionStats | undefined {
    return this.connTables.get(id)?.stats();
  }

  /** Stops reading the exposures' TCP clients (a checkpoint's hold). */
  pause(): void {
    this.held = true;
    for (const s of this.tcpSockets) s.pause();
  }

  /** Reads the exposures' TCP clients again after `pause()`. */
  resume(): void {
    this.held = false;
    for (const s of this.tcpSockets) s.resume();
  }

  /** Stops listening and drops every connection; resolves when the listeners are closed. */
  close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    const waits = this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const s of this.tcpSockets) s.destroy();
    for (const s of this.servers) if ('closeAllConnections' in s) (s as HttpServer).closeAllConnections();
    return Promise.all(waits).then(() => undefined);
  }

  /** Opens the listeners not open yet (Broker.listenExposures). */
  listen(): Promise<ExposureInfo[]> {
    // Listening twice would bind every port twice: a second call gets the first one's result,
    // unless that one failed.
    this.listening ??= this.listenAll().catch((e: unknown) => {
      this.listening = null;
      throw e;
    });
    return this.listening;
  }

  private async listenAll(): Promise<ExposureInfo[]> {
    const host = this.host.options.exposureHost ?? DEFAULT_EXPOSURE_HOST;
    for (const ex of this.host.plan.exposures) {
      const ch = this.host.exposureChannel(ex.host_port);
      if (!ch || this.openExposures.has(ex.host_port)) continue;
      if (this.host.closed()) throw new Error(`cannot listen for exposure ${ch.id}: the broker is closed`);
      const http = isHttpProtocol(ex.protocol);
      const stream = isStreamProtocol(ex.protocol);
      const mode = http ? 'http' : stream ? 'stream' : 'frames';
      // Each connection holds a requester (and maybe a session): the table bounds how many one exposure keeps.
      const table = this.connectionTable(ch, http);
      const server = http ? this.httpServer(ch, table) : stream ? this.streamServer(ch, table) : this.frameServer(ch, table);
      const want = this.host.options.mapHostPort ? this.host.options.mapHostPort(ex.host_port) : ex.host_port;
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(want, host, () => {
            server.off('error', reject);
            resolve();
          });
        });
      } catch (e) {
        // The server never listened; nothing to close. A later call tries this port again.
        throw new Error(`cannot listen on ${host}:${want} for exposure ${ch.id}: ${(e as Error).message}`);
      }
      if (this.host.closed()) {
        // close() ran while this port was being bound and could not see the server.
        server.close();
        throw new Error(`cannot listen for exposure ${ch.id}: the broker is closed`);
      }
      this.servers.push(server);
      const addr = server.address();
      const bound = typeof addr === 'object' && addr ? addr.port : want;
      this.host.log({ level: 'info', message: `exposure ${ch.id} listening on ${host}:${bound} (${mode})`, channel: ch.id });
      this.openExposures.set(ex.host_port, { id: ch.id, host_port: ex.host_port, bound_port: bound, address: host, instance: ex.instance, port: ex.port, mode });
    }
    return this.host.plan.exposures.flatMap((ex) => this.openExposures.get(ex.host_port) ?? []);
  }


  /** The requester of one TCP connection to an exposure (its session is the connection). */
  private newTcpRequester(ch: ChannelRt, sock: Socket, name: string): Requester {
    return {
      name,
      clone: 0,
      port: ch.providerPort,
      channel: ch,
      budget: this.host.budget(ch, 0),
      outstanding: 0,
      session: null,
      orderState: 0,
      orderMoved: false,
      alive: true,
      write: (line, droppable) => {
        if (sock.destroyed) return false;
        if (droppable && sock.writableLength > DROP_WATER) return false;
        this.host.write(sock, line);
        return true;
      },
      pausable: sock,
      connectionSession: true,
    };
  }

  /**
   * The connection table of an exposure, and the timer that closes the
   * exposures' idle and half-sent connections (one for the broker, started
   * with the first exposure).
   */
  private connectionTable(ch: ChannelRt, http: boolean): ConnectionTable {
    let table = this.connTables.get(ch.id);
    if (table) return table;
    let lastLog = -Infinity;
    let unlogged = 0;
    table = new ConnectionTable(this.limits, http, (what, peer, why) => {
      // A flood of connections must not become a flood of log lines: one a second, with a count of the rest.
      const now = performance.now();
      if (now - lastLog < 1000) {
        unlogged++;
        return;
      }
      const more = unlogged > 0 ? ` (and ${unlogged} more connections shed, refused or timed out in the last second)` : '';
      lastLog = now;
      unlogged = 0;
      const verb = what === 'shed' ? 'shed a connection of' : what === 'refused' ? 'refused a connection from' : 'closed a connection of';
      this.host.log({ level: what === 'timed_out' ? 'info' : 'warn', message: `exposure ${ch.id}: ${verb} ${peer}: ${why}${more}`, channel: ch.id });
    }, ch.exposure?.connections);
    this.connTables.set(ch.id, table);
    if (!this.sweepTimer) {
      this.sweepTimer = setInterval(() => {
        for (const t of this.connTables.values()) t.sweep();
      }, this.sweepEvery());
      this.sweepTimer.unref?.();
    }
    return table;
  }

  /** How often timeouts of connections are looked at: a quarter of the shortest, within 10 ms..1 s. */
  private sweepEvery(): number {
    const l = this.limits;
    let shortest = Math.min(l.headerTimeoutMs, l.idleTimeoutMs);
    for (const ex of this.host.plan.exposures) shortest = Math.min(shortest, ex.connections?.idle_timeout_ms ?? shortest);
    return Math.max(10, Math.min(1000, Math.floor(shortest / 4)));
  }

  /** A throttle of one connection's reads, when its exposure declares a `bandwidth`. */
  private throttle(ch: ChannelRt, sock: Socket): Throttle | null {
    const bps = ch.exposure?.connections?.bytes_per_second;
    return bps ? new Throttle(bps, sock, () => this.held) : null;
  }

  /**
   * A byte-stream exposure (std.tcp.Stream; streams.ts): each connection is a
   * requester of its own whose client's bytes become `data` chunks, checked
   * and forwarded like a channel's sends, and which takes the provider's
   * `write` and `close` notifications that name its number.
   */
  private streamServer(ch: ChannelRt, table: ConnectionTable): TcpServer {
    const size = chunkBytes(ch.inv);
    return createTcpServer((sock) => {
      if (!table.admit(sock, { busy: () => false, unfinishedSince: () => null })) return;
      this.tcpSockets.add(sock);
      if (this.held) sock.pause();
      const conn = this.nextConn++;
      const name = `tcp:${ch.exposure!.host_port}`;
      const req = this.newTcpRequester(ch, sock, name);
      // A chunk the broker refuses leaves a hole in the stream: the connection is closed instead of going on without it.
      req.write = (line) => {
        if (line.startsWith('{"t":"denied"')) sock.destroy();
        return false;
      };
      req.stream = {
        conn,
        deliver: (op, body) => {
          if (sock.destroyed) return false;
          if (op === 'close') {
            sock.end();
            return true;
          }
          if (op !== 'write') return false;
          sock.write(Buffer.from((body as { data: string }).data, 'base64'));
          if (sock.writableLength > STREAM_CLIENT_WATER) {
            this.host.log({ level: 'warn', message: `exposure ${ch.id}: closed connection ${conn} of ${sock.remoteAddress}: it reads nothing and ${sock.writableLength} bytes wait for it`, channel: ch.id });
            sock.destroy();
          }
          return true;
        },
      };
      ch.requesters.add(req);
      this.host.sessions.open(req, `tcp ${sock.remoteAddress}:${sock.remotePort}`);
      const send = (op: string, body: unknown) => this.host.guard(`chunk from ${name}`, () => this.host.fromRequester(req, { t: 'send', op, body }, null));
      send('opened', { conn });
      const throttle = this.throttle(ch, sock);
      sock.on('data', (data: Buffer) =>
        this.host.batch(() => {
          throttle?.read(data.length);
          for (const b64 of chunks(data, size)) {
            if (sock.destroyed) return;
            send('data', { conn, data: b64 });
          }
        }),
      );
      sock.on('error', () => {});
      sock.once('close', () => {
        throttle?.stop();
        table.remove(sock);
        this.tcpSockets.delete(sock);
        // The guest learns of the end, unless the broker itself is going away.
        if (!this.host.closed()) send('closed', { conn });
        this.host.endOrder(req, 'the connection closed');
        req.alive = false;
        ch.requesters.delete(req);
        if (req.session) this.host.sessions.end(req.session);
      });
    });
  }

  private frameServer(ch: ChannelRt, table: ConnectionTable): TcpServer {
    return createTcpServer((sock) => {
      let splitter: LineSplitter | null = null;
      let current: Requester | null = null;
      // Busy: a call outstanding, or frames waiting for the session's clone.
      const admitted = table.admit(sock, {
        busy: () => current !== null && (current.outstanding > 0 || (current.session !== null && current.session.opening !== null)),
        unfinishedSince: () => splitter?.unfinishedSince ?? null,
      });
      if (!admitted) return;
      this.tcpSockets.add(sock);
      const name = `tcp:${ch.exposure!.host_port}`;
      const req = this.newTcpRequester(ch, sock, name);
      current = req;
      ch.requesters.add(req);
      this.host.sessions.open(req, `tcp ${sock.remoteAddress}:${sock.remotePort}`);
      splitter = new LineSplitter(ch.lineLimit, {
        line: (text, bytes) => this.host.guard(`frame from ${name}`, () => {
          let frame: unknown;
          try {
            frame = JSON.parse(text);
          } catch {
            this.host.violation({ ...byRequester(req), kind: 'malformed', detail: `not JSON: ${snippet(text)}` });
            return;
          }
          const env = envelope(frame);
          if (typeof env !== 'string' && (env.t === 'open' || env.t === 'close')) {
            // The connection is the session: open/close frames are acknowledged and change nothing.
            req.write!(`{"t":"${env.t === 'open' ? 'opened' : 'closed'}"${env.id === undefined ? '' : `,"id":${JSON.stringify(env.id)}`}}\n`, true);
            return;
          }
          this.host.fromRequester(req, frame, null);
        }),
        oversize: (bytes) => this.host.violation({ ...byRequester(req), kind: 'oversize', detail: `a line of more than ${ch.lineLimit} bytes (${bytes} seen); the rest is discarded` }),
      });
      this.host.addSender(sock, splitter);
      const lines = splitter;
      const throttle = this.throttle(ch, sock);
      sock.on('data', (chunk: Buffer) => {
        throttle?.read(chunk.length);
        this.host.batch(() => lines.push(chunk));
      });
      sock.on('error', () => {});
      sock.once('close', () => {
        throttle?.stop();
        table.remove(sock);
        this.tcpSockets.delete(sock);
        this.host.endOrder(req, 'the connection closed');
        req.alive = false;
        ch.requesters.delete(req);
        if (req.session) this.host.sessions.end(req.session);
      });
    });
  }

  private httpServer(ch: ChannelRt, table: ConnectionTable): HttpServer {
    const op = ch.ops.get('request');
    const l = this.limits;
    const options = {
      // node:http closes a connection whose request head is unfinished after headersTimeout (408), and one whose
      // request (body included) takes longer than requestTimeout; the table closes those that send nothing.
      headersTimeout: l.headerTimeoutMs,
      requestTimeout: Math.max(REQUEST_TIMEOUT_MS, l.headerTimeoutMs),
      keepAliveTimeout: 5_000,
      connectionsCheckingInterval: this.sweepEvery(),
    };
    // Requests in progress per connection, from the request to the end of its response: such a connection is busy.
    const inProgress = new WeakMap<Socket, number>();
    // Bytes read up to the last request head or response; more means a request head has begun since.
    const heads = new WeakMap<Socket, { mark: number; since: number | null }>();
    const headDone = (sock: Socket) => heads.set(sock, { mark: sock.bytesRead, since: null });
    const headSince = (sock: Socket): number | null => {
      const h = heads.get(sock);
      if (!h || sock.bytesRead <= h.mark) return null;
      h.since ??= performance.now();
      return h.since;
    };
    const server = createHttpServer(options, (hreq, hres) => {
      const sock = hreq.socket;
      inProgress.set(sock, (inProgress.get(sock) ?? 0) + 1);
      headDone(sock);
      hres.once('close', () => {
        inProgress.set(sock, (inProgress.get(sock) ?? 1) - 1);
        headDone(sock);
        table.touch(sock);
      });
      handle(hreq, hres).catch((e: unknown) => {
        this.host.log({ level: 'error', message: `internal error on exposure ${ch.id}: ${(e as Error)?.stack ?? String(e)}`, channel: ch.id });
        writeBrokerError(hres, 500, 'internal broker error');
      });
    });
    const handle = async (hreq: IncomingMessage, hres: ServerResponse): Promise<void> => {
      const sock = hreq.socket;
      let req = httpRequesters.get(sock);
      if (!req) {
        req = this.newTcpRequester(ch, sock, `tcp:${ch.exposure!.host_port}`);
        req.write = null;
        req.pausable = null;
        httpRequesters.set(sock, req);
        ch.requesters.add(req);
        this.host.sessions.open(req, `http ${sock.remoteAddress}:${sock.remotePort}`);
        const r = req;
        sock.once('close', () => {
          r.alive = false;
          ch.requesters.delete(r);
          if (r.session) this.host.sessions.end(r.session);
        });
      }
      const r = req;
      const name = r.name;
      if (!op || op.kind !== 'call') {
        writeBrokerError(hres, 502, `the exposed port ${ch.providerPort} does not carry a request call`);
        return;
      }
      const body = await readBody(hreq, HTTP_MAX_BODY);
      if (body === null) {
        this.host.violation({ ...byRequester(r), kind: 'oversize', detail: `HTTP request body over ${HTTP_MAX_BODY} bytes` });
        writeBrokerError(hres, 413, `request body over ${HTTP_MAX_BODY} bytes`);
        return;
      }
      if (r.budget.bucket && !r.budget.bucket.take()) {
        this.host.violation({ ...byRequester(r), kind: 'rate', detail: `over the exposure's rate` });
        writeBrokerError(hres, 429, 'too many requests');
        return;
      }
      const msg = toRequestMessage(hreq, body);
      const err = op.input(msg);
      if (err !== undefined) {
        this.host.violation({ ...byRequester(r), kind: 'schema', detail: `request: ${prefixBody(err)}` });
        writeBrokerError(hres, 400, `request refused: ${prefixBody(err)}`);
        return;
      }
      const bodyJson = JSON.stringify(msg);
      if (Buffer.byteLength(bodyJson) > ch.inv.max_message_bytes) {
        this.host.violation({ ...byRequester(r), kind: 'oversize', detail: `request of ${Buffer.byteLength(bodyJson)} bytes is over ${ch.inv.max_message_bytes}` });
        writeBrokerError(hres, 413, `request over ${ch.inv.max_message_bytes} bytes`);
        return;
      }
      if (r.budget.inflight >= ch.inv.max_inflight) {
        this.host.violation({ ...byRequester(r), kind: 'inflight', detail: `${r.budget.inflight} requests outstanding` });
        writeBrokerError(hres, 503, 'too many requests in flight');
        return;
      }
      this.host.forwardCall(r, op, bodyJson, (answer) => {
        if (hres.writableEnded || hres.destroyed) return;
        if (answer.ok) {
          if (!writeResponseMessage(hres, answer.body as { status: number; headers: Record<string, string>; body?: string })) {
            writeBrokerError(hres, 502, 'the provider answered with headers HTTP cannot carry');
          } else ch.counters.frames_to_requirer++;
          return;
        }
        writeBrokerError(hres, answer.kind === 'timeout' ? 504 : 502, answer.error);
      });
    };
    const httpRequesters = new WeakMap<Socket, Requester>();
    server.on('connection', (sock: Socket) => {
      headDone(sock);
      if (!table.admit(sock, { busy: () => (inProgress.get(sock) ?? 0) > 0, unfinishedSince: () => headSince(sock) })) return;
      this.tcpSockets.add(sock);
      sock.once('close', () => {
        table.remove(sock);
        this.tcpSockets.delete(sock);
      });
    });
    server.on('clientError', (e: NodeJS.ErrnoException, sock) => {
      if (e.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        // A request head or body that did not arrive in time: a slow or stalled client, not a refused frame.
        table.timedOut(sock as Socket, `did not finish a request head within ${l.headerTimeoutMs} ms or a request within ${options.requestTimeout} ms`);
        if (sock.writable) sock.end('HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        else sock.destroy();
        return;
      }
      this.host.violation({ instance: `tcp:${ch.exposure!.host_port}`, clone: 0, port: ch.providerPort, channel: ch, kind: 'malformed', detail: 'not a valid HTTP/1.1 request' });
      if (sock.writable) sock.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      else sock.destroy();
    });
    return server;
  }
}
