// Factory ports (spec/factories.md): a creator clone asks, on its factory
// port, for instances of the `created` instance its plan declares. This
// module keeps which created clones each creator clone owns, checks a
// `create` against the factory's bound and parameter schemas before the
// supervisor's hook forks anything, and answers `create`, `destroy` and
// `list`. The broker (broker.ts) routes calls with `to` to the owned clone.

import type { PlanInstance } from '@mcl/plan';
import { compileSchema, type Validator } from './schema';
import type { BrokerOptions, ViolationKind } from './types';
import type { Envelope } from './frames';
import type { MessageSchema } from '@mcl/plan';

/** What factories need of the broker. */
export interface FactoryHost {
  readonly options: Pick<BrokerOptions, 'onCreate' | 'onDestroy'>;
  /** Refuses the creator's frame: counted, audited and answered with `denied`. */
  deny(kind: ViolationKind, detail: string, id: number | string | undefined): void;
  /** Writes an answer line to the creator. */
  answer(line: string): void;
  log(level: 'info' | 'warn' | 'error', message: string, instance: string, clone?: number): void;
}

interface CreatorState {
  /** Created clones alive or being made, by handle (the created clone's index). */
  live: Set<number>;
  /** Creates granted but not yet answered: they count against the bound. */
  pending: number;
}

/** A created instance of the plan with its factory, as the broker enforces it. */
export interface FactoryRt {
  created: PlanInstance;
  max: number;
  detached: boolean;
  params: Map<string, Validator>;
}

export function factoryOf(inst: PlanInstance, schemas: Record<string, MessageSchema>): FactoryRt | undefined {
  const c = inst.created_by;
  if (inst.mode !== 'created' || !c) return undefined;
  const params = new Map<string, Validator>();
  for (const [name, schema] of Object.entries(c.params ?? {})) params.set(name, compileSchema(schema, schemas));
  return { created: inst, max: c.max, detached: c.detached, params };
}

/** A creator clone's key: `<creator id>\0<clone>`, as the owner map records it. */
const creatorKey = (creator: { instance: string; clone: number }) => `${creator.instance}\0${creator.clone}`;

export class Factories {
  /**
   * What each creator clone has made, per factory: `<created id>\0<creator key>`. Per factory
   * because a creator with two factory ports has a bound for each, and a handle (a created clone's
   * index) means a clone of one created instance only.
   */
  private readonly creators = new Map<string, CreatorState>();
  /** The creator of every created clone: `<created id>\0<clone>` -> `<creator id>\0<clone>`. */
  private readonly owner = new Map<string, string>();

  private state(key: string): CreatorState {
    let s = this.creators.get(key);
    if (!s) this.creators.set(key, (s = { live: new Set(), pending: 0 }));
    return s;
  }

  private stateKey(f: FactoryRt, creator: { instance: string; clone: number }): string {
    return `${f.created.id}\0${creatorKey(creator)}`;
  }

  /** Whether `handle` is a live created clone of this creator clone. */
  owns(f: FactoryRt, creator: { instance: string; clone: number }, handle: number): boolean {
    return this.creators.get(this.stateKey(f, creator))?.live.has(handle) === true && this.owner.get(`${f.created.id}\0${handle}`) === creatorKey(creator);
  }

  /** The creator clone that owns created clone `handle` of `f`, if it is alive. */
  ownerOf(f: FactoryRt, handle: number): { instance: string; clone: number } | undefined {
    const key = this.owner.get(`${f.created.id}\0${handle}`);
    if (key === undefined) return undefined;
    const cut = key.lastIndexOf('\0');
    return { instance: key.slice(0, cut), clone: Number(key.slice(cut + 1)) };
  }

  /** Handles a `create`, `destroy` or `list` frame from a creator clone on its factory port. */
  frame(host: FactoryHost, f: FactoryRt, creator: { instance: string; clone: number }, env: Envelope): void {
    const key = creatorKey(creator);
    const st = this.state(this.stateKey(f, creator));
    const idPart = `"id":${JSON.stringify(env.id)}`;
    const id = f.created.id;
    if (env.t === 'list') {
      host.answer(`{"t":"instances",${idPart},"handles":${JSON.stringify([...st.live].sort((a, b) => a - b))}}\n`);
      return;
    }
    if (env.t === 'destroy') {
      const h = env.handle!;
      if (!st.live.has(h)) {
        host.deny('factory_handle', `${creator.instance}[${creator.clone}] has no created instance ${h} of ${id}`, env.id);
        return;
      }
      this.forget(id, h, st);
      void Promise.resolve(host.options.onDestroy?.(id, h)).catch((e) => host.log('error', `destroying ${id}[${h}] failed: ${(e as Error).message}`, id, h));
      host.answer(`{"t":"destroyed",${idPart},"handle":${h}}\n`);
      return;
    }
    // create
    const params = env.params ?? {};
    for (const [name, value] of Object.entries(params)) {
      const v = f.params.get(name);
      if (!v) {
        const listed = [...f.params.keys()];
        host.deny('factory_params', `${id} takes no parameter ${JSON.stringify(name.slice(0, 64))} at creation (${listed.length ? `it takes ${listed.join(', ')}` : 'it takes none'})`, env.id);
        return;
      }
      const err = v(value);
      if (err !== undefined) {
        host.deny('factory_params', `parameter ${name} of ${id}: ${err.startsWith(':') ? err.slice(2) : err}`, env.id);
        return;
      }
    }
    if (st.live.size + st.pending >= f.max) {
      host.deny('factory_bound', `${creator.instance}[${creator.clone}] already has ${st.live.size + st.pending} instances of ${id}, its factory's max`, env.id);
      return;
    }
    const hook = host.options.onCreate;
    if (!hook) {
      host.answer(`{"t":"error",${idPart},"error":"this deployment cannot create instances of ${id}"}\n`);
      return;
    }
    st.pending++;
    hook(id, creator, params).then(
      (clone) => {
        st.pending--;
        st.live.add(clone);
        this.owner.set(`${id}\0${clone}`, key);
        host.log('info', `${creator.instance}[${creator.clone}] created ${id}[${clone}]`, id, clone);
        host.answer(`{"t":"created",${idPart},"handle":${clone}}\n`);
      },
      (e: unknown) => {
        st.pending--;
        host.log('warn', `creating ${id} for ${creator.instance}[${creator.clone}] failed: ${(e as Error).message}`, id);
        host.answer(`{"t":"error",${idPart},"error":${JSON.stringify(`the instance could not be created: ${(e as Error).message}`.slice(0, 1024))}}\n`);
      },
    );
  }

  /**
   * A created clone went away without its creator asking (an apply replaced or removed its
   * instance): it is no longer the creator's and no longer counts against the bound. Returns the
   * creator clone that owned it, if any.
   */
  gone(f: FactoryRt, handle: number): { instance: string; clone: number } | undefined {
    const owner = this.ownerOf(f, handle);
    if (!owner) return undefined;
    const st = this.creators.get(this.stateKey(f, owner));
    if (st) this.forget(f.created.id, handle, st);
    else this.owner.delete(`${f.created.id}\0${handle}`);
    return owner;
  }

  private forget(id: string, handle: number, st: CreatorState): void {
    st.live.delete(handle);
    this.owner.delete(`${id}\0${handle}`);
  }

  /**
   * A creator clone went away: its created clones are destroyed with it,
   * unless the factory is detached. Returns the clones destroyed.
   */
  creatorGone(host: Pick<FactoryHost, 'options' | 'log'>, factories: readonly FactoryRt[], creator: { instance: string; clone: number }): number[] {
    const key = creatorKey(creator);
    const out: number[] = [];
    for (const f of factories) {
      if (f.created.created_by?.instance !== creator.instance || f.detached) continue;
      const sk = this.stateKey(f, creator);
      const st = this.creators.get(sk);
      if (!st) continue;
      for (const h of [...st.live]) {
        if (this.owner.get(`${f.created.id}\0${h}`) !== key) continue;
        this.forget(f.created.id, h, st);
        out.push(h);
        void Promise.resolve(host.options.onDestroy?.(f.created.id, h)).catch((e) => host.log('error', `destroying ${f.created.id}[${h}] failed: ${(e as Error).message}`, f.created.id, h));
      }
      if (st.live.size === 0 && st.pending === 0) this.creators.delete(sk);
    }
    return out;
  }
}
