// A fake Kubernetes API server on loopback, enough for the backend's requests:
// discovery, get/list/create/replace/delete of namespaced objects, server-side
// apply (PATCH application/apply-patch+yaml), /version and /apis. It records
// every request, and plays KubeVirt and the kubelet by marking applied
// VirtualMachines ready and the broker's Deployment available.

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Recorded {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType?: string;
  body?: Record<string, unknown>;
}

interface Resource {
  name: string;
  kind: string;
  namespaced: boolean;
}

const GROUPS: Record<string, Resource[]> = {
  '/api/v1': [
    { name: 'namespaces', kind: 'Namespace', namespaced: false },
    { name: 'configmaps', kind: 'ConfigMap', namespaced: true },
    { name: 'secrets', kind: 'Secret', namespaced: true },
    { name: 'services', kind: 'Service', namespaced: true },
    { name: 'resourcequotas', kind: 'ResourceQuota', namespaced: true },
    { name: 'pods', kind: 'Pod', namespaced: true },
  ],
  '/apis/apps/v1': [{ name: 'deployments', kind: 'Deployment', namespaced: true }],
  '/apis/networking.k8s.io/v1': [{ name: 'networkpolicies', kind: 'NetworkPolicy', namespaced: true }],
  '/apis/kubevirt.io/v1': [{ name: 'virtualmachines', kind: 'VirtualMachine', namespaced: true }],
};

export interface FakeApiServer {
  url: string;
  requests: Recorded[];
  /** Objects by `<group path>/namespaces/<ns>/<resource>/<name>` (or `/api/v1/namespaces/<name>`). */
  store: Map<string, Record<string, unknown>>;
  /** When false, applied machines stay not ready (to test the readiness timeout). */
  ready: boolean;
  /** Pod logs by pod name. */
  logs: Map<string, string>;
  close(): Promise<void>;
}

function json(res: import('node:http').ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function status(res: import('node:http').ServerResponse, code: number, reason: string, message: string): void {
  json(res, code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      data += c;
      if (data.length > 8 * 1024 * 1024) reject(new Error('body too large'));
    });
    req.on('end', () => resolve(data));
  });
}

function matches(selector: string | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [k, v] = term.split('=');
    return (labels ?? {})[k] === v;
  });
}

export async function startFakeApiServer(): Promise<FakeApiServer> {
  const requests: Recorded[] = [];
  const store = new Map<string, Record<string, unknown>>();
  const logs = new Map<string, string>();
  let version = 1;
  const fake = { requests, store, logs, ready: true } as FakeApiServer;

  const server: Server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams.entries());
    const text = req.method === 'GET' || req.method === 'DELETE' ? '' : await readBody(req);
    const body = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
    const p = url.pathname;
    requests.push({ method: req.method ?? '', path: p, query, contentType: req.headers['content-type'], body });

    if (p === '/version') return json(res, 200, { major: '1', minor: '31', gitVersion: 'v1.31.0-fake' });
    if (p === '/apis') {
      return json(res, 200, {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: Object.keys(GROUPS)
          .filter((g) => g.startsWith('/apis/'))
          .map((g) => {
            const [, , name, v] = g.split('/');
            return { name, versions: [{ groupVersion: `${name}/${v}`, version: v }], preferredVersion: { groupVersion: `${name}/${v}`, version: v } };
          }),
      });
    }
    if (GROUPS[p]) {
      return json(res, 200, {
        kind: 'APIResourceList',
        groupVersion: p.replace(/^\/apis?\//, ''),
        resources: GROUPS[p].map((r) => ({ name: r.name, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['create', 'delete', 'get', 'list', 'patch', 'update'] })),
      });
    }
    const group = Object.keys(GROUPS).find((g) => p.startsWith(`${g}/`));
    if (!group) return status(res, 404, 'NotFound', `no route ${p}`);
    const rest = p.slice(group.length + 1).split('/');
    // namespaces/<ns>/<resource>[/<name>[/log]] or namespaces[/<name>]
    let key: string;
    let collection: string;
    let name: string | undefined;
    let sub: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      collection = `${group}/namespaces/${rest[1]}/${rest[2]}`;
      name = rest[3];
      sub = rest[4];
    } else {
      collection = `${group}/${rest[0]}`;
      name = rest[1];
    }
    key = name ? `${collection}/${name}` : collection;
    const existing = store.get(key);

    if (sub === 'log') {
      const t = logs.get(name ?? '');
      if (t === undefined) return status(res, 404, 'NotFound', 'no log');
      res.writeHead(200, { 'content-type': 'text/plain' });
      return res.end(t);
    }
    const finish = (obj: Record<string, unknown>) => {
      const kind = obj.kind;
      if (fake.ready && kind === 'VirtualMachine') obj.status = { ready: true, printableStatus: 'Running' };
      if (fake.ready && kind === 'Deployment') obj.status = { readyReplicas: 1 };
      (obj.metadata as Record<string, unknown>).resourceVersion = String(++version);
      store.set(key, obj);
      return obj;
    };
    switch (req.method) {
      case 'GET':
        if (name) return existing ? json(res, 200, existing) : status(res, 404, 'NotFound', `${key} not found`);
        return json(res, 200, {
          kind: 'List',
          apiVersion: 'v1',
          metadata: {},
          items: [...store.entries()].filter(([k, o]) => k.startsWith(`${collection}/`) && !k.slice(collection.length + 1).includes('/') && matches(query.labelSelector, (o.metadata as { labels?: Record<string, string> }).labels)).map(([, o]) => o),
        });
      case 'POST': {
        const n = (body?.metadata as { name?: string } | undefined)?.name;
        key = `${collection}/${n}`;
        if (store.has(key)) return status(res, 409, 'AlreadyExists', `${key} already exists`);
        return json(res, 201, finish(body!));
      }
      case 'PUT': {
        if (!existing) return status(res, 404, 'NotFound', `${key} not found`);
        const rv = (body?.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
        if (rv !== undefined && rv !== (existing.metadata as { resourceVersion?: string }).resourceVersion) return status(res, 409, 'Conflict', 'the object has been modified');
        return json(res, 200, finish(body!));
      }
      case 'PATCH':
        if (req.headers['content-type'] !== 'application/apply-patch+yaml') return status(res, 415, 'UnsupportedMediaType', 'only server-side apply here');
        return json(res, existing ? 200 : 201, finish(body!));
      case 'DELETE':
        if (!existing) return status(res, 404, 'NotFound', `${key} not found`);
        store.delete(key);
        return json(res, 200, { kind: 'Status', apiVersion: 'v1', status: 'Success' });
      default:
        return status(res, 405, 'MethodNotAllowed', String(req.method));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return fake;
}

/** A kubeconfig for the fake server (plain HTTP on loopback, a token user). */
export function kubeconfigFor(url: string, context = 'fake'): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    `current-context: ${context}`,
    'clusters:',
    `- name: fake`,
    `  cluster:`,
    `    server: ${url}`,
    '    insecure-skip-tls-verify: true',
    'contexts:',
    `- name: ${context}`,
    '  context:',
    '    cluster: fake',
    '    user: fake',
    'users:',
    '- name: fake',
    '  user:',
    '    token: test-token',
    '',
  ].join('\n');
}
