// Builders for hand-written policy inputs: instances, channels, exposures and
// rules with distinct spans, so tests can check where diagnostics point.

import type { Ident, PolicyRule, PortRef, Span } from '@mcl/language';
import type { InstanceMode, PlanChannel, PlanExposure, PlanInstance, PlanPort, PlanTemplate, PlanTarget } from '@mcl/plan';
import type { PolicyInput, ScopedRule, SourceRef } from '../../src/policy/types';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export interface InstanceOptions {
  label?: string;
  declassifies?: [string, string][];
  memory?: number;
  vcpus?: number;
  mode?: InstanceMode;
  replicas?: number;
  maxSessions?: number;
  template?: string;
  ports?: string[];
}

export type OpKind = 'call' | 'send' | 'notify';

export class InputBuilder {
  private next = 1000;
  readonly input: PolicyInput;

  constructor(target: Partial<PlanTarget> = {}) {
    this.input = {
      target: { name: 'host', backend: 'kvm', memory_bytes: 64 * GiB, vcpus: 64, vcpu_overcommit: 4, ...target },
      templates: [],
      instances: [],
      channels: [],
      exposures: [],
      rules: [],
      labels: { labels: [], edges: [], declaredAt: {} },
      origins: { instances: {}, channels: {}, exposures: {}, labels: {}, target: this.ref(10) },
    };
  }

  /** A fresh span of the given length, distinct from every other one. */
  span(length = 5): Span {
    const start = this.next;
    this.next += length + 1;
    return { start, end: start + length };
  }

  ref(length = 5, file = 'main.mcl'): SourceRef {
    return { file, span: this.span(length) };
  }

  labels(...chains: string[][]): this {
    const set = new Set(this.input.labels.labels);
    for (const chain of chains) {
      for (const l of chain) {
        set.add(l);
        this.input.labels.declaredAt[l] ??= this.ref(l.length);
      }
      for (let i = 0; i + 1 < chain.length; i++) this.input.labels.edges.push([chain[i], chain[i + 1]]);
    }
    this.input.labels.labels = [...set].sort();
    return this;
  }

  instance(id: string, o: InstanceOptions = {}): this {
    const memory = o.memory ?? 128 * MiB;
    const vcpus = o.vcpus ?? 1;
    const template = o.template ?? `busybox-${memory / MiB}m-${vcpus}c`;
    if (!this.input.templates.some((t) => t.id === template)) {
      const t: PlanTemplate = { id: template, image: 'busybox', memory_bytes: memory, vcpus, port_slots: 4, instance_count: 0 };
      this.input.templates.push(t);
    }
    this.input.templates.find((t) => t.id === template)!.instance_count++;
    const inst: PlanInstance = {
      id,
      component: 'C',
      template,
      memory_bytes: memory,
      vcpus,
      mode: o.mode ?? (o.replicas !== undefined ? 'replicas' : 'single'),
      replicas: o.replicas ?? 1,
      restart: { policy: 'never', max_retries: 0 },
      declassifies: (o.declassifies ?? []).map(([from, to]) => ({ from, to })),
      params: {},
      sensitive_params: [],
      program: { argv: [], env: {}, files: [] },
      ports: (o.ports ?? []).map(
        (name, i): PlanPort => ({ name, direction: 'provide', protocol: 'P', slot: i + 1, channels: [] }),
      ),
      digest: '',
    };
    if (o.label !== undefined) {
      inst.label = o.label;
      this.input.origins.labels[id] = this.ref();
    }
    if (o.maxSessions !== undefined) inst.max_sessions = o.maxSessions;
    this.input.instances.push(inst);
    this.input.origins.instances[id] = this.ref(id.length);
    return this;
  }

  /** `connect a.x -> b.y` carrying operations of the given kinds (default: one call). */
  connect(from: string, to: string, kinds: OpKind[] = ['call']): this {
    const [fi, fp] = split(from);
    const [ti, tp] = split(to);
    const id = `${fi}.${fp}->${ti}.${tp}`;
    const channel: PlanChannel = {
      id,
      from: { instance: fi, port: fp },
      to: { instance: ti, port: tp },
      protocol: 'P',
      ops: kinds.map((kind, i) => ({ name: `${kind}${i}`, kind, input: 'M', ...(kind === 'call' ? { output: 'M' } : {}) })),
      invariants: { max_message_bytes: 1 << 20, rate: null, timeout_ms: 30_000, max_inflight: 64, order: null },
    };
    this.input.channels.push(channel);
    this.input.origins.channels[id] = this.ref(id.length);
    return this;
  }

  expose(port: string, hostPort: number): this {
    const [instance, name] = split(port);
    const x: PlanExposure = {
      host_port: hostPort,
      transport: 'tcp',
      instance,
      port: name,
      protocol: 'P',
      ops: [],
      invariants: { max_message_bytes: 1024, rate: null, timeout_ms: 1000, max_inflight: 1, order: null },
    };
    this.input.exposures.push(x);
    this.input.origins.exposures[String(hostPort)] = this.ref();
    return this;
  }

  rule(rule: PolicyRule, scope = '', file = 'main.mcl'): ScopedRule {
    const sr: ScopedRule = { rule, scope, file };
    this.input.rules.push(sr);
    return sr;
  }

  ident(name: string): Ident {
    return { kind: 'Ident', name, span: this.span(Math.max(1, name.length)) };
  }

  portRef(text: string): PortRef {
    const [instance, port] = split(text);
    return { kind: 'PortRef', instance: this.ident(instance), port: this.ident(port), span: this.span(text.length) };
  }

  onlyFrom(target: string, ...sources: string[]): ScopedRule {
    return this.only('from', target, sources);
  }

  onlyThrough(target: string, ...sources: string[]): ScopedRule {
    return this.only('through', target, sources);
  }

  onlyFromIn(scope: string, target: string, ...sources: string[]): ScopedRule {
    return this.only('from', target, sources, scope);
  }

  private only(mode: 'from' | 'through', target: string, sources: string[], scope = ''): ScopedRule {
    return this.rule(
      { kind: 'OnlyRule', mode, target: this.ident(target), sources: sources.map((s) => this.ident(s)), span: this.span(20) },
      scope,
    );
  }

  noPath(from: string, to: string, scope = ''): ScopedRule {
    return this.rule({ kind: 'NoPathRule', from: this.ident(from), to: this.ident(to), span: this.span(20) }, scope);
  }

  exposedOnly(ports: string[], scope = ''): ScopedRule {
    return this.rule({ kind: 'ExposedOnlyRule', ports: ports.map((p) => this.portRef(p)), span: this.span(20) }, scope);
  }

  noFlow(label: string, to: string, scope = ''): ScopedRule {
    return this.rule({ kind: 'NoFlowRule', label: this.ident(label), to: this.ident(to), span: this.span(20) }, scope);
  }

  budgetMemory(bytes: number, scope = ''): ScopedRule {
    const raw = `${bytes / MiB}MiB`;
    return this.rule(
      {
        kind: 'BudgetRule',
        resource: 'memory',
        value: { kind: 'Size', raw, amount: bytes / MiB, unit: 'MiB', bytes, span: this.span(raw.length) },
        span: this.span(20),
      },
      scope,
    );
  }

  budgetVcpus(count: number, scope = ''): ScopedRule {
    return this.rule(
      {
        kind: 'BudgetRule',
        resource: 'vcpus',
        value: { kind: 'Int', raw: String(count), value: count, span: this.span(String(count).length) },
        span: this.span(20),
      },
      scope,
    );
  }
}

function split(text: string): [string, string] {
  const dot = text.lastIndexOf('.');
  return [text.slice(0, dot), text.slice(dot + 1)];
}
