// The Kubernetes objects of a plan: what `mclc render --format k8s` prints and
// what `mclc apply` sends to the cluster for a kubevirt target. A pure
// function of the plan (and of the deployment's lineage when known), so the
// same plan gives the same objects, byte for byte; spec/kubevirt.md explains
// every choice made here.
//
// The shape, in short:
// - every clone of every instance is a KubeVirt VirtualMachine (`<instance>-<k>`),
//   booted from the guest image's kernel and initramfs in a container image, with
//   a pod-network interface that accepts only the guest's port numbers;
// - the broker is a Deployment of one pod that runs the same broker code as on
//   KVM: it dials each guest's ports (guests listen, the broker connects, as with
//   QEMU's sockets) and listens for the exposures, each a Service;
// - NetworkPolicies deny everything, then allow exactly broker -> guest on the
//   guest's wired ports and the exposures' ports into the broker (and the
//   broker's DNS lookups of the guests' names);
// - one ResourceQuota bounds the namespace by the target's (or the root
//   system's budget's) memory and vCPUs.

import { prettyJson, sha256Hex, type Plan, type PlanImage, type PlanInstance, type PlanPolicyRule } from '@mcl/plan';

/** A Kubernetes object as plain JSON. */
export type KubeObject = { apiVersion: string; kind: string; metadata: KubeMetadata } & Record<string, unknown>;

export interface KubeMetadata {
  name: string;
  namespace?: string;
  labels: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface RenderOptions {
  /** The deployment's lineage (from its state in the cluster); default the plan's `prior_state` lineage, else none. */
  lineage?: string;
}

export class RenderError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------
// Names, labels and numbers every object shares (spec/kubevirt.md, "Labels").

const LABEL_PREFIX = 'mcl.dev';
export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  system: `${LABEL_PREFIX}/system`,
  instance: `${LABEL_PREFIX}/instance`,
  clone: `${LABEL_PREFIX}/clone`,
  role: `${LABEL_PREFIX}/role`,
  plan: `${LABEL_PREFIX}/plan-digest`,
  lineage: `${LABEL_PREFIX}/lineage`,
} as const;
export const ANNOTATIONS = {
  plan: `${LABEL_PREFIX}/plan-digest`,
  instanceDigest: `${LABEL_PREFIX}/instance-digest`,
  component: `${LABEL_PREFIX}/component`,
  channels: `${LABEL_PREFIX}/channels`,
  budgets: `${LABEL_PREFIX}/budgets`,
} as const;
export const MANAGER = 'mclc';

/** A guest listens for the broker on this TCP port plus the port's virtio-serial slot (0: the control port). */
export const GUEST_PORT_BASE = 20000;
/** The headless Service that gives each guest its DNS name `<vm>.<GUESTS_SERVICE>.<namespace>.svc`. */
export const GUESTS_SERVICE = 'mcl-guests';
export const BROKER_NAME = 'mcl-broker';
export const PLAN_SECRET = 'mcl-plan';
/**
 * The deployment's key, from which the broker derives each guest's token. Not rendered (a rendering is the
 * same bytes for the same plan, a key must be secret): `apply` creates it once and keeps it.
 */
export const BROKER_KEY_SECRET = 'mcl-broker-key';
/** Where the broker's pod mounts the key. */
export const BROKER_KEY_FILE = '/etc/mcl-key/key';
/** The broker's own status and readiness endpoint, inside its pod only. */
export const BROKER_STATUS_PORT = 19000;
/** Where a guest image and the broker's image are pulled from when the target names no registry. */
export const DEFAULT_REGISTRY = 'localhost:5000/mcl';
/** A Secret's data is at most 1 MiB; the plan goes into one. */
const MAX_SECRET_BYTES = 1024 * 1024;
/**
 * Memory KubeVirt's virt-launcher pod needs beyond the guest's (libvirt,
 * QEMU, the launcher), an allowance for the quota: KubeVirt computes the
 * exact figure per VM and adds it to the pod's requests and limits.
 */
export const LAUNCHER_OVERHEAD_BYTES = 256 * 1024 * 1024;
const BROKER_MEMORY = 256 * 1024 * 1024;
const BROKER_CPU_MILLI = 1000;

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function shortHash(s: string, n = 8): string {
  return sha256Hex(s).slice(0, n);
}

/** A label value for any string: itself when valid, else a readable prefix and a hash of the whole. */
export function labelValue(s: string): string {
  if (s.length <= 63 && LABEL_VALUE.test(s)) return s;
  const clean = s.replace(/[^-A-Za-z0-9_.]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 50).replace(/[^A-Za-z0-9]+$/, '');
  return `${clean ? `${clean}-` : ''}${shortHash(s)}`;
}

/**
 * An RFC 1035 label (what Service and VirtualMachine names must be) for an
 * instance id: lower case, `.` and `_` become `-`; when that changed the id,
 * a hash of the id keeps names of different ids apart (`Web` and `web`).
 */
export function objectName(id: string, maxLength = 63): string {
  const simple = id.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^[^a-z]+/, '').replace(/-+$/, '');
  const exact = simple === id && simple.length > 0 && simple.length <= maxLength;
  if (exact) return simple;
  const h = shortHash(id, 6);
  const room = maxLength - h.length - 1;
  const head = simple.slice(0, room).replace(/-+$/, '');
  return head ? `${head}-${h}` : `m-${h}`;
}

/** A Kubernetes quantity of bytes: in Mi or Gi when exact, else plain bytes. */
export function bytesQuantity(bytes: number): string {
  const Mi = 1024 * 1024;
  if (bytes > 0 && bytes % (1024 * Mi) === 0) return `${bytes / (1024 * Mi)}Gi`;
  if (bytes > 0 && bytes % Mi === 0) return `${bytes / Mi}Mi`;
  return String(bytes);
}

function milliQuantity(milli: number): string {
  return milli % 1000 === 0 ? String(milli / 1000) : `${milli}m`;
}

/** How many clones (VirtualMachines) an instance runs. */
export function cloneCount(inst: PlanInstance): number {
  return inst.mode === 'replicas' ? Math.max(1, inst.replicas) : 1;
}

/** The VirtualMachine name of an instance's clone. */
export function vmName(inst: PlanInstance, clone: number): string {
  return `${objectName(inst.id, 56)}-${clone}`;
}

/** The ports of an instance the broker relays: every port on a channel, an exposure or an egress. */
export function wiredPorts(inst: PlanInstance): PlanInstance['ports'] {
  return inst.ports.filter((p) => p.channels.length > 0 || p.exposed_on !== undefined || p.egress !== undefined);
}

/** The guest ports the broker dials: the control port, and every wired port. */
export function wiredSlots(inst: PlanInstance): number[] {
  const slots = [0, ...wiredPorts(inst).map((p) => p.slot)];
  return [...new Set(slots)].sort((a, b) => a - b);
}

/**
 * Kernel modules every guest image of a kubevirt target has beyond its own: a KubeVirt machine's one
 * interface, on the pod network with the masquerade binding, is a virtio-net device, and virtio_net
 * needs net_failover and failover. The agent loads every module of the image at boot, before it
 * brings eth0 up in the TCP transport (backends/kvm/guest/agent.sh).
 */
export const GUEST_NET_MODULES: readonly string[] = ['failover', 'net_failover', 'virtio_net'];

/** The image a kubevirt target's guests boot: the plan's image with the network modules added (once). */
export function guestImageSpec(image: PlanImage): PlanImage {
  return { ...image, modules: [...image.modules, ...GUEST_NET_MODULES.filter((m) => !image.modules.includes(m))] };
}

/** The image reference of a plan image in a registry: content-addressed by the image's digest. */
export function guestImageRef(registry: string, plan: Plan, imageName: string): string {
  const img = plan.images.find((i) => i.name === imageName);
  return `${registry}/guest-${objectName(imageName)}:${(img?.digest ?? '').slice(0, 16) || 'latest'}`;
}

export function brokerImageRef(registry: string, plan: Plan): string {
  return `${registry}/mclc:${plan.mclc_version.replace(/[^A-Za-z0-9_.-]/g, '-')}`;
}

// ---------------------------------------------------------------------------

/** The namespace and registry a kubevirt plan deploys with, or a RenderError saying why the plan is not one. */
export function kubeSettings(plan: Plan): { namespace: string; registry: string; context?: string } {
  if (plan.target.backend !== 'kubevirt' || !plan.target.namespace) {
    throw new RenderError(
      `the plan targets backend \`${plan.target.backend}\`, not \`kubevirt\`: it was not checked against what KubeVirt can do`,
      'plan for a kubevirt target: `target k8s { backend kubevirt  namespace "shop"  memory 16GiB  vcpus 8 }`, then `mclc plan . --target k8s --out shop.plan`',
    );
  }
  return { namespace: plan.target.namespace, registry: plan.target.registry ?? DEFAULT_REGISTRY, context: plan.target.context };
}

/**
 * Every object of the plan's deployment, in a fixed order: the plan Secret,
 * the quota, the network policies, the Services, the broker, the guests.
 */
export function renderObjects(plan: Plan, options: RenderOptions = {}): KubeObject[] {
  const { namespace, registry } = kubeSettings(plan);
  const lineage = options.lineage ?? plan.prior_state?.lineage;
  const common: Record<string, string> = {
    [LABELS.managedBy]: MANAGER,
    [LABELS.system]: labelValue(plan.system),
    [LABELS.plan]: plan.digests.plan.slice(0, 32),
  };
  if (lineage) common[LABELS.lineage] = labelValue(lineage);
  const meta = (name: string, labels: Record<string, string> = {}, annotations: Record<string, string> = {}): KubeMetadata => {
    const m: KubeMetadata = { name, namespace, labels: { ...common, ...labels }, annotations: { [ANNOTATIONS.plan]: `sha256:${plan.digests.plan}`, ...annotations } };
    return m;
  };
  const systemSel = { [LABELS.system]: labelValue(plan.system) };
  const brokerSel = { ...systemSel, [LABELS.role]: 'broker' };
  const guestSel = (inst: PlanInstance) => ({ ...systemSel, [LABELS.role]: 'guest', [LABELS.instance]: labelValue(inst.id) });

  const out: KubeObject[] = [];

  // The plan, for the broker: it enforces the channels from it and sends each
  // guest its program over the control port, as the KVM supervisor does. A
  // Secret, because instance parameters may be sensitive.
  const planText = prettyJson(plan);
  if (new TextEncoder().encode(planText).length > MAX_SECRET_BYTES) {
    throw new RenderError(`the plan is larger than the 1 MiB a Kubernetes Secret holds`, 'move large program files into the guest image');
  }
  out.push({ apiVersion: 'v1', kind: 'Secret', metadata: meta(PLAN_SECRET, { [LABELS.role]: 'plan' }), type: 'Opaque', stringData: { 'plan.json': planText } });

  // The quota: the target's share of the cluster (or the root system's budget
  // when smaller), plus what KubeVirt's launcher pods and the broker need.
  const vms = plan.instances.reduce((n, i) => n + cloneCount(i), 0);
  const rootBudget = (resource: 'memory' | 'vcpus'): number | undefined =>
    plan.policies?.rules.filter((r): r is Extract<PlanPolicyRule, { kind: 'budget' }> => r.kind === 'budget' && r.scope === '' && r.resource === resource).reduce<number | undefined>((m, r) => (m === undefined ? r.value : Math.min(m, r.value)), undefined);
  const guestMemory = Math.min(plan.target.memory_bytes, rootBudget('memory') ?? Infinity);
  const guestVcpus = Math.min(plan.target.vcpus * plan.target.vcpu_overcommit, rootBudget('vcpus') ?? Infinity);
  const budgets = (plan.policies?.rules ?? []).filter((r) => r.kind === 'budget').map((r) => `${r.scope || '(root)'} ${r.resource} ${r.raw}`);
  out.push({
    apiVersion: 'v1',
    kind: 'ResourceQuota',
    metadata: meta('mcl-quota', {}, budgets.length ? { [ANNOTATIONS.budgets]: budgets.join('; ') } : {}),
    spec: {
      hard: {
        'limits.memory': bytesQuantity(guestMemory + vms * LAUNCHER_OVERHEAD_BYTES + BROKER_MEMORY),
        'requests.memory': bytesQuantity(guestMemory + vms * LAUNCHER_OVERHEAD_BYTES + BROKER_MEMORY),
        'limits.cpu': milliQuantity(Math.ceil(guestVcpus * 1000) + vms * 1000 + BROKER_CPU_MILLI),
        'requests.cpu': milliQuantity(Math.ceil(guestVcpus * 1000) + vms * 1000 + BROKER_CPU_MILLI),
        'count/virtualmachines.kubevirt.io': String(vms),
      },
    },
  });

  // Network policies: deny all, then exactly the paths the plan needs.
  out.push({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: meta('mcl-default-deny'),
    spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] },
  });
  const brokerEgress: Record<string, unknown>[] = [
    // The broker finds guests by their names in the cluster DNS; nothing else may resolve names.
    {
      to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
      ports: [
        { protocol: 'UDP', port: 53 },
        { protocol: 'TCP', port: 53 },
      ],
    },
  ];
  for (const inst of plan.instances) {
    brokerEgress.push({ to: [{ podSelector: { matchLabels: guestSel(inst) } }], ports: wiredSlots(inst).map((s) => ({ protocol: 'TCP', port: GUEST_PORT_BASE + s })) });
  }
  // Egress: the broker opens the connections to each destination itself. A NetworkPolicy names no
  // DNS names, so a destination by name opens its port to any address, and one by IP address only it.
  for (const e of plan.egresses ?? []) {
    const ip = /^[0-9.]+$/.test(e.destination.host) ? `${e.destination.host}/32` : e.destination.host.includes(':') ? `${e.destination.host}/128` : undefined;
    brokerEgress.push({ ...(ip ? { to: [{ ipBlock: { cidr: ip } }] } : {}), ports: [{ protocol: 'TCP', port: e.destination.port }] });
  }
  const brokerIngress = plan.exposures.map((x) => ({ ports: [{ protocol: 'TCP', port: x.host_port }] }));
  out.push({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: meta(`${BROKER_NAME}`, { [LABELS.role]: 'broker' }),
    spec: { podSelector: { matchLabels: brokerSel }, policyTypes: ['Ingress', 'Egress'], ingress: brokerIngress, egress: brokerEgress },
  });
  for (const inst of plan.instances) {
    out.push({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: meta(`mcl-guest-${objectName(inst.id, 50)}`, { [LABELS.role]: 'guest', [LABELS.instance]: labelValue(inst.id) }),
      spec: {
        podSelector: { matchLabels: guestSel(inst) },
        // No egress rule: a guest opens no connection at all; it only answers the broker.
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [{ podSelector: { matchLabels: brokerSel } }], ports: wiredSlots(inst).map((s) => ({ protocol: 'TCP', port: GUEST_PORT_BASE + s })) }],
        egress: [],
      },
    });
  }

  // Services: the guests' DNS names, and one per exposure.
  out.push({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(GUESTS_SERVICE, { [LABELS.role]: 'guest' }),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: { ...systemSel, [LABELS.role]: 'guest' },
      ports: [{ name: 'control', protocol: 'TCP', port: GUEST_PORT_BASE, targetPort: GUEST_PORT_BASE }],
    },
  });
  for (const x of plan.exposures) {
    out.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta(`${objectName(`${x.instance}-${x.port}`, 50)}-${x.host_port}`, { [LABELS.role]: 'exposure', [LABELS.instance]: labelValue(x.instance) }),
      spec: {
        type: 'LoadBalancer',
        selector: brokerSel,
        ports: [{ name: 'tcp', protocol: 'TCP', port: x.host_port, targetPort: x.host_port }],
      },
    });
  }

  // The broker: one pod (its rate buckets, order automata and sessions live in
  // memory), replaced rather than rolled, so two brokers never serve at once.
  out.push({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(BROKER_NAME, { [LABELS.role]: 'broker' }),
    spec: {
      replicas: 1,
      strategy: { type: 'Recreate' },
      selector: { matchLabels: brokerSel },
      template: {
        metadata: { labels: { ...common, ...brokerSel }, annotations: { [ANNOTATIONS.plan]: `sha256:${plan.digests.plan}` } },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'broker',
              image: brokerImageRef(registry, plan),
              imagePullPolicy: 'IfNotPresent',
              args: ['__kube-broker', '--plan', '/etc/mcl/plan.json', '--key', BROKER_KEY_FILE, '--guests', `${GUESTS_SERVICE}.${namespace}.svc`, '--status-port', String(BROKER_STATUS_PORT)],
              ports: [
                ...plan.exposures.map((x) => ({ name: `x-${x.host_port}`, containerPort: x.host_port, protocol: 'TCP' })),
                { name: 'status', containerPort: BROKER_STATUS_PORT, protocol: 'TCP' },
              ],
              readinessProbe: { httpGet: { path: '/ready', port: BROKER_STATUS_PORT }, periodSeconds: 2 },
              resources: {
                requests: { memory: bytesQuantity(BROKER_MEMORY), cpu: milliQuantity(BROKER_CPU_MILLI) },
                limits: { memory: bytesQuantity(BROKER_MEMORY), cpu: milliQuantity(BROKER_CPU_MILLI) },
              },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              volumeMounts: [
                { name: 'plan', mountPath: '/etc/mcl', readOnly: true },
                { name: 'key', mountPath: BROKER_KEY_FILE.slice(0, BROKER_KEY_FILE.lastIndexOf('/')), readOnly: true },
              ],
            },
          ],
          volumes: [
            { name: 'plan', secret: { secretName: PLAN_SECRET, items: [{ key: 'plan.json', path: 'plan.json' }] } },
            { name: 'key', secret: { secretName: BROKER_KEY_SECRET, items: [{ key: 'key', path: 'key' }] } },
          ],
        },
      },
    },
  });

  // The guests: one VirtualMachine per clone.
  const podCommon = Object.fromEntries(Object.entries(common).filter(([k]) => k !== LABELS.plan));
  const runStrategy = { always: 'Always', on_failure: 'RerunOnFailure', never: 'Once' } as const;
  for (const inst of plan.instances) {
    const slots = wiredSlots(inst);
    const tmpl = plan.templates.find((t) => t.id === inst.template);
    const image = guestImageRef(registry, plan, tmpl?.image ?? '');
    const cpuRequest = Math.max(1, Math.ceil((inst.vcpus * 1000) / Math.max(1, plan.target.vcpu_overcommit)));
    for (let k = 0; k < cloneCount(inst); k++) {
      const name = vmName(inst, k);
      const labels = { ...guestSel(inst), [LABELS.clone]: String(k) };
      const annotations = { [ANNOTATIONS.instanceDigest]: `sha256:${inst.digest}`, [ANNOTATIONS.component]: inst.component };
      out.push({
        apiVersion: 'kubevirt.io/v1',
        kind: 'VirtualMachine',
        metadata: meta(name, labels, annotations),
        spec: {
          runStrategy: runStrategy[inst.restart.policy],
          template: {
            // The machine's pod is labelled without the plan digest: a new plan that leaves this
            // instance as it was must leave its machine's template as it was, or KubeVirt would
            // flag the running machine as needing a restart.
            metadata: { labels: { ...podCommon, ...labels }, annotations },
            spec: {
              hostname: name,
              subdomain: GUESTS_SERVICE,
              terminationGracePeriodSeconds: 10,
              domain: {
                cpu: { cores: inst.vcpus, sockets: 1, threads: 1 },
                memory: { guest: bytesQuantity(inst.memory_bytes) },
                resources: {
                  requests: { memory: bytesQuantity(inst.memory_bytes), cpu: milliQuantity(cpuRequest) },
                  limits: { memory: bytesQuantity(inst.memory_bytes), cpu: milliQuantity(inst.vcpus * 1000) },
                },
                firmware: {
                  kernelBoot: {
                    kernelArgs: `console=ttyS0 quiet mcl.transport=tcp mcl.port_base=${GUEST_PORT_BASE} mcl.slots=${slots.join(',')}`,
                    container: { image, imagePullPolicy: 'IfNotPresent', kernelPath: '/boot/vmlinuz', initrdPath: '/boot/initrd.img' },
                  },
                },
                devices: {
                  autoattachGraphicsDevice: false,
                  autoattachSerialConsole: true,
                  disks: [],
                  interfaces: [{ name: 'default', masquerade: {}, ports: slots.map((s) => ({ name: `p${s}`, port: GUEST_PORT_BASE + s, protocol: 'TCP' })) }],
                  rng: {},
                },
              },
              networks: [{ name: 'default', pod: {} }],
            },
          },
        },
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Serialisation: deterministic YAML (a document per object) or JSON (a List).

/** The objects as one multi-document YAML stream. */
export function toYaml(objects: readonly KubeObject[]): string {
  return objects.map((o) => `---\n${yamlValue(o, 0)}`).join('');
}

/** The objects as a `v1/List`, canonical JSON with a trailing newline. */
export function toJsonList(objects: readonly KubeObject[]): string {
  return `${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }, null, 2)}\n`;
}

/**
 * A small YAML emitter for JSON values, so the bytes depend on nothing but the
 * objects: block mappings and sequences in the objects' own key order, and
 * strings as JSON strings (valid YAML) whenever a plain scalar could be read
 * as something else.
 */
function yamlValue(v: unknown, indent: number): string {
  const pad = ' '.repeat(indent);
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]\n';
    return v
      .map((item) => {
        if (isObject(item) && Object.keys(item).length > 0) {
          const body = yamlValue(item, indent + 2);
          return `${pad}- ${body.slice(indent + 2)}`;
        }
        if (Array.isArray(item) && item.length > 0) return `${pad}-\n${yamlValue(item, indent + 2)}`;
        return `${pad}- ${yamlScalar(item)}\n`;
      })
      .join('');
  }
  if (isObject(v)) {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined);
    if (keys.length === 0) return '{}\n';
    return keys
      .map((k) => {
        const x = v[k];
        const key = yamlKey(k);
        if (isObject(x) && Object.keys(x).length > 0) return `${pad}${key}:\n${yamlValue(x, indent + 2)}`;
        if (Array.isArray(x) && x.length > 0) return `${pad}${key}:\n${yamlValue(x, indent)}`;
        if (typeof x === 'string' && literalBlock(x)) return `${pad}${key}: |${x.endsWith('\n') ? '' : '-'}\n${indentLines(x, indent + 2)}`;
        return `${pad}${key}: ${isObject(x) || Array.isArray(x) ? yamlValue(x, 0) : `${yamlScalar(x)}\n`}`;
      })
      .join('');
  }
  return `${yamlScalar(v)}\n`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A multi-line string YAML keeps exactly as a literal block: printable, no leading space, at most one final newline. */
function literalBlock(s: string): boolean {
  return s.includes('\n') && !/^[ \n]/.test(s) && !s.endsWith('\n\n') && !/[\u0000-\u0008\u000b-\u001f\u007f\u0085\u2028\u2029\ufeff]/.test(s) && !/ \n|\r/.test(s);
}

function indentLines(s: string, indent: number): string {
  const pad = ' '.repeat(indent);
  const body = s.endsWith('\n') ? s.slice(0, -1) : s;
  return `${body
    .split('\n')
    .map((l) => (l ? pad + l : ''))
    .join('\n')}\n`;
}

const PLAIN = /^[A-Za-z_/][A-Za-z0-9_./-]*$/;
const RESERVED = /^(true|false|yes|no|on|off|null|y|n|~)$/i;

function yamlKey(k: string): string {
  return PLAIN.test(k) && !RESERVED.test(k) ? k : JSON.stringify(k);
}

function yamlScalar(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean' || typeof v === 'number') return String(v);
  const s = String(v);
  return PLAIN.test(s) && !RESERVED.test(s) ? s : JSON.stringify(s);
}
