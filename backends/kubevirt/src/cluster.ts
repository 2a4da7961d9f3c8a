// The cluster as the lifecycle commands see it: a handful of calls, made with
// @kubernetes/client-node against the kubeconfig's context. Keeping them here,
// behind one small interface, lets the lifecycle logic be read (and tested
// against a fake API server on loopback) without the client's generality.

import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Writable } from 'node:stream';
import { ApiException, ApisApi, CoreV1Api, KubeConfig, KubernetesObjectApi, Log, PatchStrategy, VersionApi, type KubernetesObject } from '@kubernetes/client-node';
import type { KubeObject } from './render';
import { MANAGER } from './render';
import { failure, usage } from './errors';

/** Every request the backend makes is bounded in time, so a cluster that does not answer is a failure, not a hang. */
export const REQUEST_TIMEOUT_MS = 15_000;

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
}

export interface Cluster {
  /** `context` as the kubeconfig names it, and the API server's address, for messages. */
  readonly context: string;
  readonly server: string;
  /** Server-side apply with field manager `mclc`, taking over fields another manager set (spec/kubevirt.md). */
  apply(obj: KubeObject): Promise<KubernetesObject>;
  /** Objects of a kind in the namespace with the labels of `selector` (a label selector string). */
  list(apiVersion: string, kind: string, namespace: string, selector: string): Promise<KubernetesObject[]>;
  /** The object, or undefined when it does not exist. */
  read(ref: ObjectRef, namespace: string): Promise<KubernetesObject | undefined>;
  create(obj: KubeObject): Promise<KubernetesObject>;
  /** Replaces the object; fails with a conflict (409) when its resourceVersion is not the one given. */
  replace(obj: KubeObject): Promise<KubernetesObject>;
  /** Deletes the object (its dependents in the background); true when it existed. */
  delete(ref: ObjectRef, namespace: string): Promise<boolean>;
  /** The API server's version, which also proves the context reachable and the credentials accepted. */
  version(): Promise<string>;
  /** The versions the API server serves of an API group (`kubevirt.io`), or undefined when it does not serve the group. */
  groupVersions(group: string): Promise<string[] | undefined>;
  podLog(namespace: string, pod: string, container: string, opts: { tail?: number; follow: boolean; signal: AbortSignal }, onText: (text: string) => void): Promise<void>;
}

/** The kubeconfig files client-node reads ($KUBECONFIG, else ~/.kube/config) that exist. */
export function kubeconfigFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const list = env.KUBECONFIG ? env.KUBECONFIG.split(delimiter).filter(Boolean) : [join(homedir(), '.kube', 'config')];
  return list.filter((f) => existsSync(f));
}

/** Loads the kubeconfig and selects `context` (default: its current context), or a usage error saying what is missing. */
export function loadKubeConfig(context: string | undefined): KubeConfig {
  const files = kubeconfigFiles();
  if (files.length === 0) {
    throw usage('no kubeconfig: $KUBECONFIG is unset or names no file, and ~/.kube/config does not exist', 'Point KUBECONFIG at the cluster\'s kubeconfig (kind and k3s write one), or run mclc where kubectl works.');
  }
  const kc = new KubeConfig();
  try {
    kc.loadFromDefault();
  } catch (e) {
    throw usage(`the kubeconfig cannot be read: ${(e as Error).message}`, `Check ${files.join(', ')} with \`kubectl config view\`.`);
  }
  if (context !== undefined) {
    if (!kc.getContextObject(context)) {
      throw usage(`the kubeconfig has no context \`${context}\``, `Its contexts are: ${kc.getContexts().map((c) => c.name).join(', ') || 'none'}. Fix the target's \`context\` or pass --context.`);
    }
    kc.setCurrentContext(context);
  }
  if (!kc.getCurrentCluster()) throw usage(`the kubeconfig's context \`${kc.getCurrentContext() || '(none)'}\` names no cluster`, 'Select a context with `kubectl config use-context NAME` or the target\'s `context`.');
  return kc;
}

function status(e: unknown): number | undefined {
  if (e instanceof ApiException) return e.code;
  const code = (e as { code?: unknown; statusCode?: unknown } | null)?.code ?? (e as { statusCode?: unknown } | null)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

/** What the API server said about a failed request, in one line. */
export function describeError(e: unknown): string {
  if (e instanceof ApiException) {
    let body: unknown = e.body;
    if (typeof body === 'string') {
      try {
        body = JSON.parse(body);
      } catch {
        /* keep the text */
      }
    }
    const message = (body as { message?: unknown } | null)?.message;
    return `HTTP ${e.code}${typeof message === 'string' ? `: ${message.slice(0, 500)}` : ''}`;
  }
  return (e as Error)?.message?.split('\n')[0] ?? String(e);
}

async function bounded<T>(what: string, server: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(failure(`${what}: the API server at ${server} did not answer within ${REQUEST_TIMEOUT_MS / 1000} s`, 'Check the cluster with `kubectl get nodes`.')), REQUEST_TIMEOUT_MS);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The cluster of a kubeconfig, through @kubernetes/client-node. */
export function connect(kc: KubeConfig): Cluster {
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const server = kc.getCurrentCluster()?.server ?? '(unknown)';
  const call = <T>(what: string, p: Promise<T>) =>
    bounded(what, server, p).catch((e: unknown) => {
      if ((e as { kind?: unknown })?.kind) throw e;
      throw Object.assign(failure(`${what}: ${describeError(e)}`, status(e) === 403 ? 'The kubeconfig\'s user may not do this in the namespace; see spec/kubevirt.md, "Permissions".' : undefined), { status: status(e) });
    });
  const header = (ref: ObjectRef, namespace: string) => ({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace } });
  return {
    context: kc.getCurrentContext(),
    server,
    apply: (obj) => call(`apply ${obj.kind}/${obj.metadata.name}`, objects.patch(obj as KubernetesObject, undefined, undefined, MANAGER, true, PatchStrategy.ServerSideApply)),
    async list(apiVersion, kind, namespace, selector) {
      const out: KubernetesObject[] = [];
      let token: string | undefined;
      // Pages of 500, at most 100 of them: a namespace of ours never holds that much, and a bound keeps a hostile server from feeding us forever.
      for (let page = 0; page < 100; page++) {
        const r = await call(`list ${kind}`, objects.list(apiVersion, kind, namespace, undefined, undefined, undefined, undefined, selector, 500, token));
        out.push(...r.items);
        token = r.metadata?._continue;
        if (!token) break;
      }
      return out;
    },
    async read(ref, namespace) {
      try {
        return await bounded(`read ${ref.kind}/${ref.name}`, server, objects.read(header(ref, namespace)));
      } catch (e) {
        if (status(e) === 404) return undefined;
        if ((e as { kind?: unknown })?.kind) throw e;
        throw failure(`read ${ref.kind}/${ref.name}: ${describeError(e)}`);
      }
    },
    create: (obj) => call(`create ${obj.kind}/${obj.metadata.name}`, objects.create(obj as KubernetesObject, undefined, undefined, MANAGER)),
    replace: (obj) => call(`replace ${obj.kind}/${obj.metadata.name}`, objects.replace(obj as KubernetesObject, undefined, undefined, MANAGER)),
    async delete(ref, namespace) {
      try {
        await bounded(`delete ${ref.kind}/${ref.name}`, server, objects.delete(header(ref, namespace), undefined, undefined, undefined, undefined, 'Background'));
        return true;
      } catch (e) {
        if (status(e) === 404) return false;
        if ((e as { kind?: unknown })?.kind) throw e;
        throw failure(`delete ${ref.kind}/${ref.name}: ${describeError(e)}`);
      }
    },
    async version() {
      const v = await call('ask the API server its version', kc.makeApiClient(VersionApi).getCode());
      return v.gitVersion;
    },
    async groupVersions(group) {
      const list = await call('discover the API groups', kc.makeApiClient(ApisApi).getAPIVersions());
      const g = (list.groups ?? []).find((x) => x.name === group);
      return g ? g.versions.map((v) => v.version) : undefined;
    },
    async podLog(namespace, pod, container, opts, onText) {
      if (!opts.follow) {
        const core = kc.makeApiClient(CoreV1Api);
        const text = await call(`read the log of pod ${pod}`, core.readNamespacedPodLog({ name: pod, namespace, container, tailLines: opts.tail, limitBytes: 8 * 1024 * 1024 }));
        onText(String(text));
        return;
      }
      const sink = new Writable({
        write(chunk: Buffer, _enc, cb) {
          onText(chunk.toString('utf8'));
          cb();
        },
      });
      const controller = await new Log(kc).log(namespace, pod, container, sink, { follow: true, tailLines: opts.tail });
      await new Promise<void>((resolveDone) => {
        if (opts.signal.aborted) resolveDone();
        opts.signal.addEventListener('abort', () => resolveDone(), { once: true });
        sink.on('finish', () => resolveDone());
      });
      controller.abort();
    },
  };
}
