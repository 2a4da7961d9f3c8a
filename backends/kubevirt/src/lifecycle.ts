// apply, destroy, status, logs and doctor against a Kubernetes cluster with
// KubeVirt (spec/kubevirt.md, "Lifecycle"). The cluster holds the deployment:
// its objects (labelled `app.kubernetes.io/managed-by: mclc`), its state (the
// ConfigMap `mcl-state`) and its lock (the ConfigMap `mcl-lock`), so a CI
// runner needs nothing but the kubeconfig. A copy of the state is kept in the
// workspace's state file too, so that `mclc plan` there diffs against it and
// `status`, `destroy` and `logs` find the namespace without being told.

import { randomBytes, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { diffPlan, staleReason, validateState, STATE_FORMAT_VERSION, type DeploymentState, type Plan } from '@mcl/plan';
import type { ApplyOptions, ApplyResult, BackendOptions, CloneState, DestroyResult, DoctorCheck, DoctorReport, EventSink, InstanceStatus, LogSink, LogsOptions, StatusReport } from '@mcl/plan/backend';
import { checkStateLocation, readState, writeState } from '@mcl/plan/state-store';
import type { KubernetesObject } from '@kubernetes/client-node';
import { connect, kubeconfigFiles, loadKubeConfig, type Cluster } from './cluster';
import { failure, locked, stale, usage } from './errors';
import { BROKER_KEY_SECRET, LABELS, MANAGER, cloneCount, kubeSettings, labelValue, renderObjects, vmName, type KubeObject } from './render';

export const STATE_CONFIGMAP = 'mcl-state';
export const LOCK_CONFIGMAP = 'mcl-lock';
/** The kinds of object a deployment has, in the order they are deleted when pruned: guests first, the plan last. */
export const MANAGED_KINDS: readonly { apiVersion: string; kind: string }[] = [
  { apiVersion: 'kubevirt.io/v1', kind: 'VirtualMachine' },
  { apiVersion: 'apps/v1', kind: 'Deployment' },
  { apiVersion: 'v1', kind: 'Service' },
  { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy' },
  { apiVersion: 'v1', kind: 'ResourceQuota' },
  { apiVersion: 'v1', kind: 'Secret' },
];
const MANAGED_SELECTOR = `${LABELS.managedBy}=${MANAGER}`;
/** A state ConfigMap larger than this is not ours to parse (a ConfigMap holds at most 1 MiB). */
const MAX_STATE_TEXT = 1024 * 1024;
const POLL_MS = 2000;

interface Where {
  namespace: string;
  context?: string;
}

/** Where a deployment is: the options, else the workspace's copy of the state (for commands without a plan). */
function whereOf(opts: BackendOptions): Where {
  let namespace = opts.cluster?.namespace;
  let context = opts.cluster?.context;
  if (namespace === undefined) {
    let local: DeploymentState | null = null;
    try {
      local = readState(opts.stateFile);
    } catch {
      local = null;
    }
    const data = local?.backend === 'kubevirt' ? (local.backend_data as { namespace?: unknown; context?: unknown } | undefined) : undefined;
    if (typeof data?.namespace === 'string') namespace = data.namespace;
    if (context === undefined && typeof data?.context === 'string') context = data.context;
  }
  if (namespace === undefined) {
    throw usage('which namespace? Nothing in this workspace records a kubevirt deployment', 'Pass --namespace NAME (and --context NAME unless the current context is the cluster).');
  }
  return { namespace, context };
}

// ---------------------------------------------------------------------------
// State and lock, in the cluster.

interface ClusterState {
  state: DeploymentState | null;
  resourceVersion?: string;
}

async function readClusterState(cluster: Cluster, namespace: string): Promise<ClusterState> {
  const cm = (await cluster.read({ apiVersion: 'v1', kind: 'ConfigMap', name: STATE_CONFIGMAP }, namespace)) as (KubernetesObject & { data?: Record<string, string> }) | undefined;
  if (!cm) return { state: null };
  const text = cm.data?.['state.json'];
  if (typeof text !== 'string' || text.length > MAX_STATE_TEXT) {
    throw failure(`ConfigMap ${namespace}/${STATE_CONFIGMAP} holds no readable state`, `Inspect it with \`kubectl -n ${namespace} get configmap ${STATE_CONFIGMAP} -o yaml\`; delete it only if nothing of the deployment is left.`);
  }
  const { state, errors } = validateState(text);
  if (!state) throw failure(`ConfigMap ${namespace}/${STATE_CONFIGMAP} is not a valid state: ${errors[0]?.path} ${errors[0]?.message}`);
  if (state.backend !== 'kubevirt') throw stale(`the state in ${namespace}/${STATE_CONFIGMAP} is the ${state.backend} backend's, not kubevirt's`);
  return { state, resourceVersion: cm.metadata?.resourceVersion };
}

async function writeClusterState(cluster: Cluster, namespace: string, prior: ClusterState, state: DeploymentState): Promise<void> {
  const obj: KubeObject = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: STATE_CONFIGMAP, namespace, labels: { [LABELS.managedBy]: MANAGER, [LABELS.role]: 'state', [LABELS.lineage]: labelValue(state.lineage) } },
    data: { 'state.json': `${JSON.stringify(state, null, 2)}\n` },
  };
  if (prior.resourceVersion === undefined) await cluster.create(obj);
  else await cluster.replace({ ...obj, metadata: { ...obj.metadata, resourceVersion: prior.resourceVersion } as never });
}

/** The workspace's copy of the state; the cluster's is the one that counts, so failing to write it is only a warning. */
function mirrorState(opts: BackendOptions, state: DeploymentState, onEvent: EventSink): void {
  try {
    checkStateLocation(opts.stateFile);
    // The workspace may also hold another backend's deployment (a local KVM one): its state is
    // the only record of it, and is never overwritten by this copy.
    const local = readState(opts.stateFile);
    if (local && local.backend !== 'kubevirt') {
      onEvent({ type: 'warning', message: `${opts.stateFile} records a ${local.backend} deployment; the kubevirt state is kept in the cluster only (use --namespace ${(state.backend_data as { namespace?: string } | undefined)?.namespace ?? 'NAME'} with status, logs and destroy)` });
      return;
    }
    writeState(opts.stateFile, state);
  } catch (e) {
    onEvent({ type: 'warning', message: `the workspace's copy of the state (${opts.stateFile}) was not written: ${(e as Error).message}` });
  }
}

/**
 * Takes the deployment's lock: creating a ConfigMap succeeds for one client
 * only. A holder that died leaves it behind; the message says who held it.
 */
async function acquireLock(cluster: Cluster, namespace: string, operation: string, opts: BackendOptions, onEvent: EventSink): Promise<() => Promise<void>> {
  const holder = { operation, host: hostname(), pid: process.pid, since: new Date().toISOString(), id: randomUUID() };
  const obj: KubeObject = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: LOCK_CONFIGMAP, namespace, labels: { [LABELS.managedBy]: MANAGER, [LABELS.role]: 'lock' } },
    data: { holder: JSON.stringify(holder) },
  };
  const deadline = Date.now() + opts.lockTimeoutMs;
  let told = false;
  for (;;) {
    try {
      await cluster.create(obj);
      break;
    } catch (e) {
      if ((e as { status?: number }).status !== 409) throw e;
      const cm = (await cluster.read({ apiVersion: 'v1', kind: 'ConfigMap', name: LOCK_CONFIGMAP }, namespace)) as (KubernetesObject & { data?: Record<string, string> }) | undefined;
      const who = (cm?.data?.holder ?? '').slice(0, 500);
      if (Date.now() >= deadline || opts.signal.aborted) {
        throw locked(`the deployment in namespace ${namespace} is locked by ${who || 'another mclc'}`, `Wait for it (--lock-timeout), or if that mclc is gone: kubectl -n ${namespace} delete configmap ${LOCK_CONFIGMAP}`);
      }
      if (!told) onEvent({ type: 'phase', phase: 'lock', action: 'wait', message: `waiting for the lock held by ${who}` });
      told = true;
      await sleep(Math.min(1000, Math.max(0, deadline - Date.now())), opts.signal);
    }
  }
  return async () => {
    // Only our own lock is removed: compare the holder id first.
    const cm = (await cluster.read({ apiVersion: 'v1', kind: 'ConfigMap', name: LOCK_CONFIGMAP }, namespace).catch(() => undefined)) as (KubernetesObject & { data?: Record<string, string> }) | undefined;
    if (cm?.data?.holder && cm.data.holder.includes(holder.id)) await cluster.delete({ apiVersion: 'v1', kind: 'ConfigMap', name: LOCK_CONFIGMAP }, namespace).catch(() => false);
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });
}

function clusterFor(context: string | undefined, onEvent?: EventSink): Cluster {
  const cluster = connect(loadKubeConfig(context));
  onEvent?.({ type: 'phase', phase: 'connect', action: 'done', message: `context ${cluster.context} (${cluster.server})` });
  return cluster;
}

// ---------------------------------------------------------------------------
// apply

export async function apply(plan: Plan, opts: ApplyOptions, onEvent: EventSink): Promise<ApplyResult> {
  const started = Date.now();
  let settings: ReturnType<typeof kubeSettings>;
  try {
    settings = kubeSettings(plan);
  } catch (e) {
    throw usage((e as Error).message, (e as { hint?: string }).hint);
  }
  const namespace = opts.cluster?.namespace ?? settings.namespace;
  if (namespace !== settings.namespace) throw usage(`the plan deploys to namespace ${settings.namespace}, not ${namespace}`, 'Drop --namespace, or plan for a target with that namespace.');
  const context = opts.cluster?.context ?? settings.context;
  const cluster = clusterFor(context, onEvent);

  if (!(await cluster.read({ apiVersion: 'v1', kind: 'Namespace', name: namespace }, namespace))) {
    await cluster.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: { [LABELS.managedBy]: MANAGER } } });
    onEvent({ type: 'phase', phase: 'namespace', action: 'create', message: `created namespace ${namespace}` });
  }
  const release = await acquireLock(cluster, namespace, 'apply', opts, onEvent);
  try {
    const prior = await readClusterState(cluster, namespace);
    const reason = staleReason(plan, prior.state);
    if (reason) throw stale(reason.message, reason.hint);
    for (const id of opts.replace) if (!plan.instances.some((i) => i.id === id)) throw usage(`--replace ${id}: the plan has no instance ${id}`);
    const lineage = prior.state?.lineage ?? randomUUID();
    const objects = renderObjects(plan, { lineage });
    const changes = diffPlan(prior.state, plan);
    const verdict = new Map(changes.instances.map((c) => [c.id, c.action]));
    const created: string[] = [];
    const replaced: string[] = [];
    const unchanged: string[] = [];
    for (const inst of plan.instances) {
      const a = opts.replace.includes(inst.id) ? 'replace' : verdict.get(inst.id);
      (a === 'create' ? created : a === 'replace' || a === 'update' ? replaced : unchanged).push(inst.id);
    }

    // Machines the plan no longer has go first: the quota counts machines, and the
    // plan's quota may not leave room for the old ones beside the new ones.
    const wanted = new Set(objects.map((o) => `${o.kind}/${o.metadata.name}`));
    wanted.add(`Secret/${BROKER_KEY_SECRET}`);
    await prune(cluster, namespace, wanted, MANAGED_KINDS.slice(0, 1), onEvent);
    await ensureBrokerKey(cluster, namespace, onEvent);
    // A replaced instance's machines are deleted too, so they boot again from the new spec.
    onEvent({ type: 'phase', phase: 'objects', action: 'start', message: `applying ${objects.length} objects to namespace ${namespace}` });
    for (const id of replaced) {
      for (const vm of objects.filter((o) => o.kind === 'VirtualMachine' && o.metadata.labels[LABELS.instance] === labelValue(id))) {
        await cluster.delete({ apiVersion: vm.apiVersion, kind: vm.kind, name: vm.metadata.name }, namespace);
      }
    }
    for (const obj of objects) {
      if (opts.signal.aborted) throw failure('interrupted while applying objects; apply again to finish');
      await cluster.apply(obj);
      const inst = obj.metadata.labels[LABELS.instance];
      if (obj.kind === 'VirtualMachine') {
        const id = plan.instances.find((i) => labelValue(i.id) === inst)?.id;
        const action = id && created.includes(id) ? 'create' : id && replaced.includes(id) ? 'replace' : 'keep';
        onEvent({ type: 'instance', instance: id, clone: Number(obj.metadata.labels[LABELS.clone]), action, message: `VirtualMachine ${obj.metadata.name} applied` });
      } else {
        onEvent({ type: 'debug', message: `${obj.kind} ${obj.metadata.name} applied` });
      }
    }

    // Then everything else the deployment has and the plan does not.
    await prune(cluster, namespace, wanted, MANAGED_KINDS.slice(1), onEvent);
    const deleted = (prior.state?.instances ?? []).map((i) => i.id).filter((id) => !plan.instances.some((i) => i.id === id));

    await waitReady(cluster, namespace, plan, opts, onEvent);

    const state: DeploymentState = {
      format_version: STATE_FORMAT_VERSION,
      lineage,
      serial: (prior.state?.serial ?? 0) + 1,
      backend: 'kubevirt',
      plan_digest: plan.digests.plan,
      system: plan.system,
      instances: plan.instances,
      channels: plan.channels,
      exposures: plan.exposures,
      backend_data: context === undefined ? { namespace } : { namespace, context },
    };
    onEvent({ type: 'phase', phase: 'state', action: 'start', message: `writing the state (serial ${state.serial}) to ConfigMap ${STATE_CONFIGMAP}` });
    try {
      await writeClusterState(cluster, namespace, prior, state);
    } catch (e) {
      if ((e as { status?: number }).status === 409) throw stale('the state in the cluster changed during the apply (someone removed the lock)', 'Check with `mclc status` and plan again.');
      throw e;
    }
    mirrorState(opts, state, onEvent);
    return {
      state,
      created: created.sort(),
      replaced: replaced.sort(),
      deleted: deleted.sort(),
      unchanged: unchanged.sort(),
      exposures: plan.exposures.map((x) => ({ host_port: x.host_port, instance: x.instance, port: x.port })),
      accelerator: { name: 'kubevirt', note: `namespace ${namespace}, context ${cluster.context}` },
      elapsed_ms: Date.now() - started,
    };
  } finally {
    await release();
  }
}

/**
 * Creates the deployment's key (Secret mcl-broker-key: 32 random bytes) unless it exists. It is kept
 * across applies: every guest learns its token from the broker's first connection after it boots, and
 * a new key would lock a running guest out. `destroy` deletes it with the rest.
 */
async function ensureBrokerKey(cluster: Cluster, namespace: string, onEvent: EventSink): Promise<void> {
  if (await cluster.read({ apiVersion: 'v1', kind: 'Secret', name: BROKER_KEY_SECRET }, namespace)) return;
  try {
    await cluster.create({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: BROKER_KEY_SECRET, namespace, labels: { [LABELS.managedBy]: MANAGER, [LABELS.role]: 'key' } },
      type: 'Opaque',
      data: { key: randomBytes(32).toString('base64') },
    });
  } catch (e) {
    // Another client made it first (the lock keeps applies apart, but not a hand-made one): theirs is kept.
    if ((e as { status?: number }).status !== 409) throw e;
    return;
  }
  onEvent({ type: 'debug', message: `Secret ${BROKER_KEY_SECRET} created: the deployment's key` });
}

/** Deletes the objects of `kinds` labelled as mclc's in the namespace that `wanted` (`Kind/name`) does not list. */
async function prune(cluster: Cluster, namespace: string, wanted: Set<string>, kinds: readonly { apiVersion: string; kind: string }[], onEvent: EventSink): Promise<void> {
  for (const k of kinds) {
    for (const o of await cluster.list(k.apiVersion, k.kind, namespace, MANAGED_SELECTOR)) {
      const name = o.metadata?.name;
      if (!name || wanted.has(`${k.kind}/${name}`)) continue;
      await cluster.delete({ ...k, name }, namespace);
      onEvent({ type: k.kind === 'VirtualMachine' ? 'instance' : 'debug', action: 'delete', message: `${k.kind} ${name} deleted: the plan no longer has it` });
    }
  }
}

/** Waits until every VirtualMachine reports ready and the broker's Deployment has its pod ready, reporting each as it gets there. */
async function waitReady(cluster: Cluster, namespace: string, plan: Plan, opts: ApplyOptions, onEvent: EventSink): Promise<void> {
  const started = Date.now();
  const deadline = started + opts.readyTimeoutMs;
  const expected = new Map<string, { instance: string; clone: number }>();
  for (const inst of plan.instances) for (let k = 0; k < cloneCount(inst); k++) expected.set(vmName(inst, k), { instance: inst.id, clone: k });
  const ready = new Set<string>();
  let brokerReady = false;
  onEvent({ type: 'phase', phase: 'ready', action: 'start', message: `waiting for ${expected.size} virtual machines and the broker` });
  for (;;) {
    const vms = await cluster.list('kubevirt.io/v1', 'VirtualMachine', namespace, MANAGED_SELECTOR);
    for (const vm of vms) {
      const name = vm.metadata?.name ?? '';
      const e = expected.get(name);
      if (!e || ready.has(name) || (vm as { status?: { ready?: unknown } }).status?.ready !== true) continue;
      ready.add(name);
      onEvent({ type: 'instance', instance: e.instance, clone: e.clone, action: 'ready', message: `ready after ${((Date.now() - started) / 1000).toFixed(1)} s`, elapsed_ms: Date.now() - started });
    }
    if (!brokerReady) {
      const d = (await cluster.read({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'mcl-broker' }, namespace)) as { status?: { readyReplicas?: unknown } } | undefined;
      if (typeof d?.status?.readyReplicas === 'number' && d.status.readyReplicas >= 1) {
        brokerReady = true;
        onEvent({ type: 'phase', phase: 'broker', action: 'ready', message: 'the broker is ready' });
      }
    }
    if (brokerReady && ready.size === expected.size) return;
    if (opts.signal.aborted) throw failure('interrupted while waiting for readiness; the objects are applied, the state is not written', 'Apply the plan again to finish.');
    if (Date.now() >= deadline) {
      const missing = [...expected.keys()].filter((n) => !ready.has(n));
      throw failure(
        `not ready after ${(opts.readyTimeoutMs / 1000).toFixed(0)} s: ${[...missing.slice(0, 10), ...(brokerReady ? [] : ['the broker'])].join(', ')}${missing.length > 10 ? ', ...' : ''}`,
        `Look with \`kubectl -n ${namespace} get vm,vmi,pods\` and \`mclc logs INSTANCE\`; raise --ready-timeout for slow clusters. The state is not written; apply again when fixed.`,
      );
    }
    await sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now())), opts.signal);
  }
}

// ---------------------------------------------------------------------------
// destroy

export async function destroy(opts: BackendOptions, onEvent: EventSink): Promise<DestroyResult> {
  const started = Date.now();
  const where = whereOf(opts);
  const cluster = clusterFor(where.context, onEvent);
  if (!(await cluster.read({ apiVersion: 'v1', kind: 'Namespace', name: where.namespace }, where.namespace))) {
    return { destroyed: [], state: null, elapsed_ms: Date.now() - started };
  }
  const release = await acquireLock(cluster, where.namespace, 'destroy', opts, onEvent);
  try {
    const prior = await readClusterState(cluster, where.namespace);
    const destroyed = new Set<string>();
    for (const k of MANAGED_KINDS) {
      for (const o of await cluster.list(k.apiVersion, k.kind, where.namespace, MANAGED_SELECTOR)) {
        const name = o.metadata?.name;
        if (!name) continue;
        await cluster.delete({ ...k, name }, where.namespace);
        const inst = o.metadata?.labels?.[LABELS.instance];
        if (k.kind === 'VirtualMachine') {
          const id = prior.state?.instances.find((i) => labelValue(i.id) === inst)?.id ?? inst;
          if (id) destroyed.add(id);
          onEvent({ type: 'instance', instance: id, action: 'delete', message: `VirtualMachine ${name} deleted` });
        } else onEvent({ type: 'debug', message: `${k.kind} ${name} deleted` });
      }
    }
    if (!prior.state) return { destroyed: [...destroyed].sort(), state: null, elapsed_ms: Date.now() - started };
    const state: DeploymentState = {
      ...prior.state,
      serial: prior.state.serial + 1,
      plan_digest: null,
      system: null,
      instances: [],
      channels: [],
      exposures: [],
      backend_data: where.context === undefined ? { namespace: where.namespace } : { namespace: where.namespace, context: where.context },
    };
    await writeClusterState(cluster, where.namespace, prior, state);
    mirrorState(opts, state, onEvent);
    return { destroyed: [...destroyed].sort(), state, elapsed_ms: Date.now() - started };
  } finally {
    await release();
  }
}

// ---------------------------------------------------------------------------
// status

const PRINTABLE: Record<string, CloneState> = {
  Running: 'running',
  Starting: 'starting',
  Provisioning: 'starting',
  WaitingForVolumeBinding: 'starting',
  Migrating: 'running',
  Paused: 'paused',
  Stopping: 'stopped',
  Stopped: 'stopped',
  Terminating: 'stopped',
  CrashLoopBackOff: 'crashed',
  ErrorUnschedulable: 'crashed',
  ErrImagePull: 'crashed',
  ImagePullBackOff: 'crashed',
  ErrorPvcNotFound: 'crashed',
  ErrorDataVolumeNotFound: 'crashed',
};

export async function status(opts: BackendOptions): Promise<StatusReport> {
  const where = whereOf(opts);
  const cluster = clusterFor(where.context);
  const { state } = await readClusterState(cluster, where.namespace);
  const empty: StatusReport = {
    deployed: false,
    system: null,
    lineage: state?.lineage ?? null,
    serial: state?.serial ?? null,
    plan_digest: null,
    supervisor: { running: false },
    instances: [],
    channels: [],
    exposures: [],
    unwired_violations: [],
    totals: { clones: 0, rss_bytes: 0, pss_bytes: 0, private_bytes: 0 },
  };
  if (!state || state.instances.length === 0) return empty;
  const vms = await cluster.list('kubevirt.io/v1', 'VirtualMachine', where.namespace, MANAGED_SELECTOR);
  const broker = (await cluster.read({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'mcl-broker' }, where.namespace)) as { status?: { readyReplicas?: number } } | undefined;
  const services = await cluster.list('v1', 'Service', where.namespace, `${MANAGED_SELECTOR},${LABELS.role}=exposure`);
  const instances: InstanceStatus[] = state.instances.map((inst) => {
    const clones = vms
      .filter((vm) => vm.metadata?.labels?.[LABELS.instance] === labelValue(inst.id))
      .map((vm) => {
        const st = (vm as { status?: { printableStatus?: unknown; ready?: unknown } }).status;
        const printable = typeof st?.printableStatus === 'string' ? st.printableStatus : '';
        const s: CloneState = st?.ready === true ? 'running' : (PRINTABLE[printable] ?? 'starting');
        return { index: Number(vm.metadata?.labels?.[LABELS.clone] ?? 0), state: s, restarts: 0, ...(printable && s === 'crashed' ? { last_exit: printable } : {}) };
      })
      .sort((a, b) => a.index - b.index);
    const wanted = cloneCount(inst);
    const running = clones.filter((c) => c.state === 'running').length;
    const health: InstanceStatus['health'] = running >= wanted ? 'healthy' : running === 0 && clones.every((c) => c.state === 'crashed') && clones.length > 0 ? 'failed' : clones.length === 0 ? 'stopped' : 'degraded';
    return { id: inst.id, component: inst.component, mode: inst.mode, health, ...(inst.label ? { label: inst.label } : {}), clones };
  });
  return {
    deployed: true,
    system: state.system,
    lineage: state.lineage,
    serial: state.serial,
    plan_digest: state.plan_digest,
    supervisor: { running: (broker?.status?.readyReplicas ?? 0) >= 1 },
    accelerator: { name: 'kubevirt', note: `namespace ${where.namespace}, context ${cluster.context}` },
    instances,
    // The counters live in the broker's pod; this report has the channels but not their figures.
    channels: state.channels.map((c) => ({ id: c.id, protocol: c.protocol, frames_forward: 0, frames_backward: 0, bytes_forward: 0, bytes_backward: 0, violations: 0, recent_violations: [] })),
    exposures: state.exposures.map((x) => ({
      host_port: x.host_port,
      instance: x.instance,
      port: x.port,
      listening: services.some((s) => (s as { spec?: { ports?: { port?: number }[] } }).spec?.ports?.some((p) => p.port === x.host_port)),
      connections_total: 0,
      connections_open: 0,
    })),
    unwired_violations: [],
    totals: { clones: instances.reduce((n, i) => n + i.clones.length, 0), rss_bytes: 0, pss_bytes: 0, private_bytes: 0 },
    warnings: [
      {
        message: "channel counters and violations are kept by the broker's pod and not shown here",
        hint: `kubectl -n ${where.namespace} logs deploy/mcl-broker`,
      },
    ],
  };
}

// ---------------------------------------------------------------------------
// logs

/** KubeVirt's launcher pod copies the guest's serial console into this container's log. */
const CONSOLE_CONTAINER = 'guest-console-log';
const MAX_LINE = 64 * 1024;

export async function logs(instanceId: string, opts: LogsOptions, onLine: LogSink): Promise<void> {
  const where = whereOf(opts);
  const cluster = clusterFor(where.context);
  const { state } = await readClusterState(cluster, where.namespace);
  const inst = state?.instances.find((i) => i.id === instanceId);
  if (!inst) throw usage(`no instance ${instanceId} is deployed in namespace ${where.namespace}`, state?.instances.length ? `The instances are: ${state.instances.map((i) => i.id).join(', ')}.` : 'Nothing is deployed there.');
  const selector = `${MANAGED_SELECTOR},${LABELS.instance}=${labelValue(inst.id)}${opts.clone !== undefined ? `,${LABELS.clone}=${opts.clone}` : ''}`;
  const pods = await cluster.list('v1', 'Pod', where.namespace, selector);
  if (pods.length === 0) throw usage(`instance ${instanceId} has no running pod${opts.clone !== undefined ? ` for clone ${opts.clone}` : ''}`, 'Check with `mclc status`.');
  await Promise.all(
    pods.map(async (pod) => {
      const clone = Number(pod.metadata?.labels?.[LABELS.clone] ?? 0);
      let rest = '';
      await cluster.podLog(where.namespace, pod.metadata!.name!, CONSOLE_CONTAINER, { tail: opts.tail, follow: opts.follow, signal: opts.signal }, (text) => {
        const lines = (rest + text).split('\n');
        rest = lines.pop() ?? '';
        // Nothing from the guest is trusted to be small: a line is cut at 64 KiB, and a
        // partial line that grows past that is printed as it is rather than kept growing.
        if (rest.length > MAX_LINE) {
          lines.push(rest);
          rest = '';
        }
        for (const l of lines) onLine({ instance: inst.id, clone, stream: 'console', text: l.slice(0, MAX_LINE) });
      });
      if (rest) onLine({ instance: inst.id, clone, stream: 'console', text: rest.slice(0, MAX_LINE) });
    }),
  );
}

// ---------------------------------------------------------------------------
// doctor

/**
 * What deploying to a kubevirt target needs from here. Problems are warnings,
 * not failures: `mclc doctor` asks every backend, and a machine that deploys
 * only to KVM needs no cluster.
 */
export async function doctor(): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const files = kubeconfigFiles();
  if (files.length === 0) {
    checks.push({ id: 'kubeconfig', status: 'warn', summary: 'no kubeconfig ($KUBECONFIG or ~/.kube/config): kubevirt targets cannot be deployed from here', hint: 'Needed only for kubevirt targets: point KUBECONFIG at the cluster\'s kubeconfig.' });
    return { checks };
  }
  let cluster: Cluster;
  try {
    cluster = connect(loadKubeConfig(undefined));
    checks.push({ id: 'kubeconfig', status: 'ok', summary: `${files.join(', ')}: current context ${cluster.context} (${cluster.server})` });
  } catch (e) {
    checks.push({ id: 'kubeconfig', status: 'warn', summary: (e as Error).message, hint: (e as { hint?: string }).hint });
    return { checks };
  }
  try {
    const v = await cluster.version();
    checks.push({ id: 'kube-context', status: 'ok', summary: `the API server answers (Kubernetes ${v})` });
  } catch (e) {
    checks.push({ id: 'kube-context', status: 'warn', summary: `the current context's API server cannot be reached: ${(e as Error).message}`, hint: 'Check with `kubectl get nodes`; a target can name another context with `context "NAME"`.' });
    return { checks };
  }
  try {
    const versions = await cluster.groupVersions('kubevirt.io');
    if (versions?.includes('v1')) checks.push({ id: 'kubevirt', status: 'ok', summary: `KubeVirt's API (kubevirt.io/v1) is served` });
    else {
      checks.push({
        id: 'kubevirt',
        status: 'warn',
        summary: versions ? `KubeVirt is installed but serves ${versions.join(', ')}, not kubevirt.io/v1` : 'KubeVirt is not installed in this cluster (no kubevirt.io API group)',
        hint: 'Install KubeVirt (spec/kubevirt.md, "Runbook").',
      });
    }
  } catch (e) {
    checks.push({ id: 'kubevirt', status: 'warn', summary: `cannot tell whether KubeVirt is installed: ${(e as Error).message}` });
  }
  return { checks };
}
