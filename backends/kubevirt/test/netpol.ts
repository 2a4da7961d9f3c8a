// Which pod can open a connection to which pod, on which port, computed from
// NetworkPolicy objects alone with the semantics of the Kubernetes API
// (networking.k8s.io/v1): a pod that no policy of a direction selects is open
// in that direction; a selected pod admits only the union of the selecting
// policies' rules; a connection needs the source's egress and the
// destination's ingress. Peers outside the namespace are modelled by their
// namespace's labels; `internet` stands for any address outside the cluster.

export interface Pod {
  /** A name for reports: `broker`, `web-0`, `kube-system/kube-dns`, `internet`. */
  name: string;
  namespace: string;
  labels: Record<string, string>;
  namespaceLabels: Record<string, string>;
  /** False for `internet`: it matches only `ipBlock` peers and no pod selector. */
  isPod: boolean;
}

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}
interface Peer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}
interface PortRule {
  protocol?: string;
  port?: number | string;
  endPort?: number;
}
interface Rule {
  from?: Peer[];
  to?: Peer[];
  ports?: PortRule[];
}
export interface NetworkPolicy {
  metadata: { name: string; namespace?: string };
  spec: { podSelector: LabelSelector; policyTypes?: string[]; ingress?: Rule[]; egress?: Rule[] };
}

export function selects(sel: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!sel) return true;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    if (e.operator === 'In' && !(has && (e.values ?? []).includes(labels[e.key]))) return false;
    if (e.operator === 'NotIn' && has && (e.values ?? []).includes(labels[e.key])) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

function peerMatches(peer: Peer, policyNs: string, pod: Pod): boolean {
  if (peer.ipBlock) return !pod.isPod; // Pod addresses are not matched by ipBlock in this model.
  if (!pod.isPod) return false;
  if (peer.namespaceSelector) {
    if (!selects(peer.namespaceSelector, pod.namespaceLabels)) return false;
  } else if (pod.namespace !== policyNs) return false;
  return selects(peer.podSelector, pod.labels);
}

function portMatches(rules: PortRule[] | undefined, proto: string, port: number): boolean {
  if (!rules || rules.length === 0) return true;
  return rules.some((r) => (r.protocol ?? 'TCP') === proto && (r.port === undefined || (typeof r.port === 'number' && (r.endPort ? port >= r.port && port <= r.endPort : port === r.port))));
}

function types(p: NetworkPolicy): string[] {
  return p.spec.policyTypes ?? (p.spec.egress ? ['Ingress', 'Egress'] : ['Ingress']);
}

/** Whether `dir` traffic of `pod` to/from `peer` on proto/port is allowed by `policies`. */
function allowed(policies: NetworkPolicy[], dir: 'Ingress' | 'Egress', pod: Pod, peer: Pod, proto: string, port: number): boolean {
  if (!pod.isPod) return true; // Outside the cluster: no NetworkPolicy applies.
  const selecting = policies.filter((p) => (p.metadata.namespace ?? pod.namespace) === pod.namespace && types(p).includes(dir) && selects(p.spec.podSelector, pod.labels));
  if (selecting.length === 0) return true;
  return selecting.some((p) =>
    ((dir === 'Ingress' ? p.spec.ingress : p.spec.egress) ?? []).some((r: Rule) => {
      const peers = dir === 'Ingress' ? r.from : r.to;
      const peerOk = !peers || peers.length === 0 || peers.some((x) => peerMatches(x, p.metadata.namespace ?? pod.namespace, peer));
      return peerOk && portMatches(r.ports, proto, port);
    }),
  );
}

/** Every `src -> dst proto/port` allowed among `pods` (a pod to itself left out), sorted. */
export function reachability(policies: NetworkPolicy[], pods: Pod[], ports: { proto: string; port: number }[]): string[] {
  const out: string[] = [];
  for (const src of pods) {
    for (const dst of pods) {
      if (src === dst || !dst.isPod) continue;
      for (const { proto, port } of ports) {
        if (allowed(policies, 'Egress', src, dst, proto, port) && allowed(policies, 'Ingress', dst, src, proto, port)) out.push(`${src.name} -> ${dst.name} ${proto}/${port}`);
      }
    }
  }
  return [...new Set(out)].sort();
}

/** Every port number any policy names, with both protocols, for the reachability search. */
export function mentionedPorts(policies: NetworkPolicy[], extra: number[] = []): { proto: string; port: number }[] {
  const nums = new Set<number>(extra);
  for (const p of policies) for (const r of [...(p.spec.ingress ?? []), ...(p.spec.egress ?? [])]) for (const pr of r.ports ?? []) if (typeof pr.port === 'number') nums.add(pr.port);
  return [...nums].sort((a, b) => a - b).flatMap((port) => [{ proto: 'TCP', port }, { proto: 'UDP', port }]);
}
