// The supervisor's metrics endpoint: Prometheus text exposition (through the
// prom-client library) on a loopback address, off unless `mclc apply
// --metrics [ADDR]` asks for it. Everything is read from the supervisor at
// scrape time (clone state and memory from /proc, the broker's counters),
// except what only events tell: fork latency, denials by kind, and the
// ledger's running totals.
//
// The endpoint answers GET /metrics only, to at most 8 connections at once,
// each closed after 10 s; it binds loopback addresses only (127.0.0.0/8,
// ::1), since what it shows (instance names, traffic, denials) is the
// operator's business: a remote Prometheus scrapes through a proxy the
// operator sets up.

import http from 'node:http';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { writeFileAtomic } from '@mcl/plan/state-store';
import { BackendFailure } from './errors';
import type { Ledger } from './ledger';
import { readSmallJson } from './rundir';
import type { Supervisor, SupervisorRecord } from './supervisor';

/** The address `--metrics` without a value means. */
export const DEFAULT_METRICS_ADDRESS = '127.0.0.1:9464';

/** Parses `HOST:PORT` (`[::1]:PORT`, or a bare port on 127.0.0.1); null with why when it is not a loopback address. */
export function parseMetricsAddress(text: string): { host: string; port: number } | { error: string } {
  const t = text.trim();
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(t) ?? (/^\d+$/.test(t) ? [t, undefined, '127.0.0.1', t] : null);
  if (!m) return { error: `${JSON.stringify(text)} is not HOST:PORT` };
  const host = (m[1] ?? m[2])!;
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return { error: `port ${m[3]} is out of range` };
  const loopback = host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
  if (!loopback) return { error: `${host} is not a loopback address; the metrics endpoint listens on 127.0.0.1 or ::1 only` };
  return { host: host === 'localhost' ? '127.0.0.1' : host, port };
}

const FORK_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];

export class MetricsEndpoint {
  readonly registry = new Registry();
  private server: http.Server | null = null;
  private address: string | null = null;
  private readonly forkSeconds: Histogram<'instance_id'>;
  private readonly denials: Counter<'channel' | 'kind'>;

  constructor(
    private readonly sup: () => Supervisor | null,
    private readonly ledger: () => Ledger | null,
  ) {
    const r = this.registry;
    const s = () => this.sup();
    const ids = () => ({ system: s()?.planSystem ?? '' });
    this.forkSeconds = new Histogram({ name: 'mcl_fork_duration_seconds', help: 'Time to fork a clone until it is ready (or paused, for a warm clone)', labelNames: ['instance_id'], buckets: FORK_BUCKETS, registers: [r] });
    this.denials = new Counter({ name: 'mcl_channel_denials_total', help: 'Frames the broker refused since the supervisor started, by channel and kind', labelNames: ['channel', 'kind'], registers: [r] });
    // `instance_id`, not `instance`: Prometheus gives every scraped series the target's own `instance` label.
    const cloneLabels = ['system', 'instance_id', 'clone', 'label'] as const;
    new Gauge({
      name: 'mcl_clone_state',
      help: '1 for the state each clone is in',
      labelNames: [...cloneLabels, 'state'],
      registers: [r],
      collect() {
        this.reset();
        for (const i of s()?.instanceStatus() ?? []) for (const c of i.clones) this.set({ ...ids(), instance_id: i.id, clone: String(c.index), label: i.label ?? '', state: c.state }, 1);
      },
    });
    new Gauge({
      name: 'mcl_clone_restarts',
      help: 'Restarts of each clone counted against its restart policy',
      labelNames: cloneLabels,
      registers: [r],
      collect() {
        this.reset();
        for (const i of s()?.instanceStatus() ?? []) for (const c of i.clones) this.set({ ...ids(), instance_id: i.id, clone: String(c.index), label: i.label ?? '' }, c.restarts);
      },
    });
    new Gauge({
      name: 'mcl_clone_cpu_seconds',
      help: "User and system CPU time of the clone's current QEMU process",
      labelNames: cloneLabels,
      registers: [r],
      collect() {
        this.reset();
        for (const i of s()?.instanceStatus() ?? []) for (const c of i.clones) if (c.cpu_ms !== undefined) this.set({ ...ids(), instance_id: i.id, clone: String(c.index), label: i.label ?? '' }, c.cpu_ms / 1000);
      },
    });
    new Gauge({
      name: 'mcl_clone_memory_bytes',
      help: "Memory of the clone's QEMU process from smaps_rollup, by kind (rss, pss, private)",
      labelNames: [...cloneLabels, 'kind'],
      registers: [r],
      collect() {
        this.reset();
        for (const i of s()?.instanceStatus() ?? []) {
          for (const c of i.clones) {
            const base = { ...ids(), instance_id: i.id, clone: String(c.index), label: i.label ?? '' };
            if (c.rss_bytes !== undefined) this.set({ ...base, kind: 'rss' }, c.rss_bytes);
            if (c.pss_bytes !== undefined) this.set({ ...base, kind: 'pss' }, c.pss_bytes);
            if (c.private_bytes !== undefined) this.set({ ...base, kind: 'private' }, c.private_bytes);
          }
        }
      },
    });
    new Gauge({
      name: 'mcl_clone_uptime_seconds',
      help: 'How long the clone has been up',
      labelNames: cloneLabels,
      registers: [r],
      collect() {
        this.reset();
        for (const i of s()?.instanceStatus() ?? []) for (const c of i.clones) if (c.uptime_ms !== undefined) this.set({ ...ids(), instance_id: i.id, clone: String(c.index), label: i.label ?? '' }, c.uptime_ms / 1000);
      },
    });
    const channelGauge = (name: string, help: string, pick: (c: ReturnType<Supervisor['channelStatus']>[number]) => [number, number]) =>
      new Gauge({
        name,
        help,
        labelNames: ['channel', 'protocol', 'direction'],
        registers: [r],
        collect() {
          this.reset();
          for (const c of s()?.channelStatus() ?? []) {
            const [fwd, back] = pick(c);
            this.set({ channel: c.id, protocol: c.protocol, direction: 'forward' }, fwd);
            this.set({ channel: c.id, protocol: c.protocol, direction: 'backward' }, back);
          }
        },
      });
    // The broker's counters start again at zero when an apply replaces it, so these are gauges, not counters.
    channelGauge('mcl_channel_frames', 'Frames the current broker relayed on each channel (forward: to the provider)', (c) => [c.frames_forward, c.frames_backward]);
    channelGauge('mcl_channel_bytes', 'Bytes the current broker relayed on each channel', (c) => [c.bytes_forward, c.bytes_backward]);
    new Gauge({
      name: 'mcl_channel_violations',
      help: 'Frames the current broker refused on each channel',
      labelNames: ['channel', 'protocol'],
      registers: [r],
      collect() {
        this.reset();
        for (const c of s()?.channelStatus() ?? []) this.set({ channel: c.id, protocol: c.protocol }, c.violations);
      },
    });
    new Gauge({
      name: 'mcl_exposure_connections',
      help: "Connections of each exposure: open now (state=open) and accepted by the current broker (state=accepted)",
      labelNames: ['host_port', 'instance_id', 'port', 'state'],
      registers: [r],
      collect() {
        this.reset();
        for (const e of s()?.exposureStatus() ?? []) {
          const base = { host_port: String(e.host_port), instance_id: e.instance, port: e.port };
          this.set({ ...base, state: 'open' }, e.connections_open);
          this.set({ ...base, state: 'accepted' }, e.connections_total);
        }
      },
    });
    // The links to the deployment's other hosts (spec/broker.md, "Links between hosts"); none on one host.
    new Gauge({
      name: 'mcl_link_up',
      help: 'Whether the link to each other host of the deployment is up (1) or down (0)',
      labelNames: ['peer'],
      registers: [r],
      collect() {
        this.reset();
        for (const l of s()?.linkStatus() ?? []) this.set({ peer: l.peer }, l.state === 'up' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'mcl_link_bytes',
      help: 'Bytes the current links sent (direction=out) and received (direction=in), per other host',
      labelNames: ['peer', 'direction'],
      registers: [r],
      collect() {
        this.reset();
        for (const l of s()?.linkStatus() ?? []) {
          this.set({ peer: l.peer, direction: 'out' }, l.bytes_out);
          this.set({ peer: l.peer, direction: 'in' }, l.bytes_in);
        }
      },
    });
    new Gauge({
      name: 'mcl_link_latency_seconds',
      help: 'Round trip of the last ping frame on the link to each other host',
      labelNames: ['peer'],
      registers: [r],
      collect() {
        this.reset();
        for (const l of s()?.linkStatus() ?? []) if (l.latency_ms !== null) this.set({ peer: l.peer }, l.latency_ms / 1000);
      },
    });
    const led = () => this.ledger();
    const ledgerCounter = (name: string, help: string, pick: (t: NonNullable<ReturnType<Ledger['totals']['get']>>) => number) =>
      new Counter({
        name,
        help,
        labelNames: ['instance_id', 'label'],
        registers: [r],
        collect() {
          this.reset();
          for (const [instance, t] of led()?.totals ?? []) this.inc({ instance_id: instance, label: t.label ?? '' }, pick(t));
        },
      });
    ledgerCounter('mcl_ledger_cpu_seconds_total', 'CPU seconds the ledger accounted since the supervisor started', (t) => t.cpu_ms / 1000);
    ledgerCounter('mcl_ledger_memory_byte_seconds_total', 'PSS byte-seconds the ledger accounted since the supervisor started', (t) => t.pss_byte_ms / 1000);
    ledgerCounter('mcl_ledger_uptime_seconds_total', 'Clone uptime the ledger accounted since the supervisor started', (t) => t.uptime_ms / 1000);
    ledgerCounter('mcl_ledger_forks_total', 'Forks the ledger accounted since the supervisor started', (t) => t.forks);
    ledgerCounter('mcl_ledger_restarts_total', 'Restarts the ledger accounted since the supervisor started', (t) => t.restarts);
    ledgerCounter('mcl_ledger_denials_total', 'Denials the ledger accounted since the supervisor started', (t) => t.denials);
  }

  /** Fork latency and denials by kind come from the supervisor's records. */
  onRecord(r: SupervisorRecord): void {
    if (r.event === 'fork') this.forkSeconds.observe({ instance_id: r.instance }, r.elapsed_ms / 1000);
    else if (r.event === 'denial') this.denials.inc({ channel: r.channel ?? '(unwired)', kind: r.kind });
  }

  /** The URL it serves, or null when off. */
  get url(): string | null {
    return this.address;
  }

  /** Listens on `addr` (closing a listener on another address first); null turns it off. */
  async listen(addr: { host: string; port: number } | null): Promise<string | null> {
    const want = addr ? `${addr.host}:${addr.port}` : null;
    if (this.server && this.wanted === want) return this.address;
    await this.close();
    if (!addr) return null;
    const server = http.createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics\n');
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(e as Error).message}\n`),
      );
    });
    server.maxConnections = 8;
    server.requestTimeout = 10_000;
    server.headersTimeout = 10_000;
    server.setTimeout(10_000, (sock) => sock.destroy());
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(addr.port, addr.host, () => res());
    });
    const a = server.address();
    const port = typeof a === 'object' && a ? a.port : addr.port;
    this.server = server;
    this.wanted = want;
    this.address = `http://${addr.host.includes(':') ? `[${addr.host}]` : addr.host}:${port}/metrics`;
    return this.address;
  }

  private wanted: string | null = null;

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    this.address = null;
    this.wanted = null;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  }
}

/**
 * Serves the endpoint where `--metrics` asks (`off` turns it off), and keeps
 * the address in the run directory; with `requested` null, the kept address
 * is used. A bad or busy address is a `usage` or `failure` error.
 */
export async function metricsAddressFor(endpoint: MetricsEndpoint, runDir: string, keptFile: string, requested: string | null): Promise<string | null> {
  let text = requested;
  if (text === null) {
    const kept = readSmallJson(join(runDir, keptFile), 1024) as { address?: unknown } | null;
    text = typeof kept?.address === 'string' ? kept.address : 'off';
  }
  if (text === 'off') {
    await endpoint.listen(null);
  } else {
    const addr = parseMetricsAddress(text === '' ? DEFAULT_METRICS_ADDRESS : text);
    if ('error' in addr) throw new BackendFailure('usage', `--metrics: ${addr.error}`, `write --metrics ${DEFAULT_METRICS_ADDRESS}, --metrics [::1]:9464, or --metrics off`);
    try {
      await endpoint.listen(addr);
    } catch (e) {
      throw new BackendFailure('failure', `the metrics endpoint cannot listen on ${addr.host}:${addr.port}: ${(e as Error).message}; nothing was changed`, 'choose another port with --metrics HOST:PORT (port 0 picks a free one)');
    }
  }
  if (requested !== null) writeFileAtomic(runDir, keptFile, JSON.stringify({ address: text }) + '\n');
  return endpoint.url;
}
