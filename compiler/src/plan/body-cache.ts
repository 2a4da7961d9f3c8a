// What one plan body may take over from the previous compile's (used by the
// IncrementalCompiler, see incremental.ts).
//
// A plan instance is a function of its flat instance's checked instance and
// component, its program, its template and what its ports are connected to;
// a plan channel is a function of its id and its checked `connect`. The
// checked objects are taken over with their modules, so an unchanged module
// hands the body the very same objects again: a body compares those by
// identity (and the few values that come from the rest of the composition by
// value) and, when nothing differs, takes the earlier plan object instead of
// building it again. An edit therefore builds the objects of the instances
// and channels it touched, not those of the whole composition.
//
// A named type's message schema is a function of its checked declaration,
// and the declarations it refers to are checked with it (a module is taken
// over only with everything it depends on): it is taken over while the
// declaration is the same object.
//
// A program is a function of its component and of the workspace files it
// reads: it is taken over when the component is the same object and every
// file it read still has the same text (read again through the host, so the
// compile still records what it depends on). Programs that reported a
// problem are never taken over: their diagnostics must be reported again.
//
// Taken-over objects are shared by the results of successive compiles; like
// every result of the compiler they are not to be modified by callers.
//
// A system's subtree that elaboration took over whole (the same piece
// object, compose/elaborate.ts) is taken over by the body as a block: its
// plan instances and channels, their origins and its share of the templates,
// images, programs and protocols, recorded once by the compile that built
// them (BlockData, made when the block is first taken over, or at once by
// the first body a cache keeps, whose blocks the next compile would
// otherwise all make together, see PlanBuilder.body). The block is
// taken over without visiting its objects when what its objects read from
// outside the subtree is the same: its components' programs are the same
// objects, the channels, exposures and egresses from outside that reach its
// ports are the same, its templates have the same ids, and no object built
// outside has an id of its own. The sorted instance and channel lists and
// the origins of the last body are then updated, not made again: the
// entries of blocks no longer taken over and of objects built last time are
// removed, and those of the blocks new to the list and of the objects built
// now merged in (BodyState). An object of a block that can no longer be
// taken over whole is still compared one by one, as above.
//
// Each compile keeps only the entries it used, so the cache holds one
// composition's objects at most.

import type { MessageSchema, PlanChannel, PlanInstance } from '@mcl/plan';
import type { ComponentInfo } from '../compose/components';
import type { Piece } from '../compose/elaborate';
import type { ProtocolInfo } from '../types/protocols';
import type { ConnInfo, InstInfo } from '../compose/systems';
import type { DeclEntry, Module } from '../context';
import type { SourceRef } from '../policy/types';
import type { ProgramSpec } from './program';

export interface CachedProgram {
  spec: ProgramSpec & { sensitive: string[] };
  /** The workspace files the program read, with the text it read. */
  reads: [string, string][];
}

export interface CachedSchema {
  schema: MessageSchema;
  /** The named types the schema refers to. */
  refs: DeclEntry[];
}

export interface CachedInstance {
  inst: InstInfo;
  comp: ComponentInfo;
  module: Module;
  prog: ProgramSpec;
  template: string;
  /** Whether `pi` carries its digest (and `json` its canonical JSON), and which serialiser made it. */
  digests: boolean;
  indexKeys: boolean;
  pi: PlanInstance;
  json: string | undefined;
  origin: SourceRef;
  /** The keys of its ports (instance id and port name) in the body's maps, in port order, made once. */
  portKeys: string[];
}

/** What a body made for each flat instance and channel it visited, by position in the flat lists. */
export interface BlockSource {
  pis: (PlanInstance | undefined)[];
  entries: (CachedInstance | undefined)[];
  instOrigins: (SourceRef | undefined)[];
  labelOrigins: (SourceRef | undefined)[];
  /** Positions of the instances whose image was reported (a block with one is not taken over). */
  reported: Set<number>;
  pcs: (PlanChannel | undefined)[];
  chOrigins: (SourceRef | undefined)[];
  /** The blocks that body took over whole, with where they start, in flat order. */
  blocks: { instances: number; channels: number; data: BlockData }[];
  digests: boolean;
  indexKeys: boolean;
}

/** One subtree's plan objects as a block (see above). */
export interface BlockData {
  pis: PlanInstance[];
  json: (string | undefined)[];
  entries: CachedInstance[];
  instOrigins: SourceRef[];
  labelOrigins: (SourceRef | undefined)[];
  pcs: PlanChannel[];
  chOrigins: SourceRef[];
  channelIds: Set<string>;
  /** Each component once, with the program its instances carry. */
  programs: [ComponentInfo, ProgramSpec][];
  images: DeclEntry[];
  protocols: ProtocolInfo[];
  /** Its instances' share of each template (by template key), and the template id they carry. */
  templates: Map<string, { image: string; memory: number; vcpus: number; slots: number; count: number; id: string }>;
  /** What reaches its ports from outside: channels, exposures and egresses, sorted and joined. */
  outside: string;
  /** Its factory ports without a protocol of their own, with the protocol they were given. */
  factory: [string, string][];
  digests: boolean;
  indexKeys: boolean;
}

/** A subtree's block: where its objects lie in the body that built them; `data` once made (null: not a block). */
export interface BlockRecord {
  /** Dropped once `data` is made. */
  src?: BlockSource;
  instances: number;
  channels: number;
  data?: BlockData | null;
}

/** A body's sorted lists and origins, with the block each entry came from (undefined: built by that body). */
export interface BodyState {
  instances: PlanInstance[];
  instanceOwners: (BlockData | undefined)[];
  channels: PlanChannel[];
  channelOwners: (BlockData | undefined)[];
  origins: { instances: Record<string, SourceRef>; channels: Record<string, SourceRef>; labels: Record<string, SourceRef> };
}

export class BodyCache {
  private blocks = new Map<Piece, BlockRecord>();
  private nextBlocks = new Map<Piece, BlockRecord>();
  private states: (BodyState | undefined)[] = [];
  private nextStates: (BodyState | undefined)[] = [];

  block(p: Piece): BlockRecord | undefined {
    return this.blocks.get(p);
  }

  keepBlock(p: Piece, r: BlockRecord): void {
    this.nextBlocks.set(p, r);
  }

  /** The state of the last compile's body with this body's place among this compile's bodies. */
  state(): BodyState | undefined {
    return this.states[this.nextStates.length];
  }

  keepState(s: BodyState | undefined): void {
    this.nextStates.push(s);
  }

  /** Counts objects taken over as a block. */
  reusedBlock(n: number): void {
    this.stats.blocks++;
    this.stats.reused += n;
  }

  private programs = new Map<ComponentInfo, CachedProgram>();
  private instances = new Map<string, CachedInstance>();
  private channels = new Map<string, { conn: ConnInfo; pc: PlanChannel }>();
  private nextPrograms = new Map<ComponentInfo, CachedProgram>();
  private nextInstances = new Map<string, CachedInstance>();
  private nextChannels = new Map<string, { conn: ConnInfo; pc: PlanChannel }>();
  private schemas = new Map<DeclEntry, CachedSchema>();
  private nextSchemas = new Map<DeclEntry, CachedSchema>();
  /** Objects taken over and built by the last body, for tests and the benchmark. */
  readonly stats = { reused: 0, built: 0, blocks: 0 };

  program(c: ComponentInfo): CachedProgram | undefined {
    return this.programs.get(c);
  }

  keepProgram(c: ComponentInfo, p: CachedProgram): void {
    this.nextPrograms.set(c, p);
  }

  /** The program this compile already kept for `c` (built or taken over without a report), if any. */
  keptProgram(c: ComponentInfo): CachedProgram | undefined {
    return this.nextPrograms.get(c);
  }

  instance(id: string): CachedInstance | undefined {
    return this.instances.get(id);
  }

  keepInstance(id: string, e: CachedInstance, reused: boolean): void {
    this.nextInstances.set(id, e);
    if (reused) this.stats.reused++;
    else this.stats.built++;
  }

  schema(e: DeclEntry): CachedSchema | undefined {
    const s = this.schemas.get(e);
    if (s) this.nextSchemas.set(e, s);
    return s;
  }

  keepSchema(e: DeclEntry, s: CachedSchema): void {
    this.nextSchemas.set(e, s);
  }

  channel(id: string, conn: ConnInfo): PlanChannel | undefined {
    const e = this.channels.get(id);
    if (e === undefined || e.conn !== conn) return undefined;
    this.nextChannels.set(id, e);
    this.stats.reused++;
    return e.pc;
  }

  /** Keeps a channel taken over from a block, by a body that builds that block's objects one by one. */
  takeChannel(id: string, conn: ConnInfo, pc: PlanChannel): void {
    this.nextChannels.set(id, { conn, pc });
    this.stats.reused++;
  }

  keepChannel(id: string, conn: ConnInfo, pc: PlanChannel): void {
    this.nextChannels.set(id, { conn, pc });
    this.stats.built++;
  }

  /**
   * Keeps what this compile may take over for the next one as well, unless already kept (a body
   * that reports only and builds no objects): an entry is checked against its inputs by identity
   * when it is used, so one kept from an older composition is only ever taken over where it is
   * still what would be built.
   */
  carryOver(): void {
    // Nothing kept yet (the usual case: one root): the maps themselves are kept, not copied.
    if (this.nextInstances.size === 0) this.nextInstances = this.instances;
    else for (const [k, v] of this.instances) if (!this.nextInstances.has(k)) this.nextInstances.set(k, v);
    if (this.nextChannels.size === 0) this.nextChannels = this.channels;
    else for (const [k, v] of this.channels) if (!this.nextChannels.has(k)) this.nextChannels.set(k, v);
    if (this.nextBlocks.size === 0) this.nextBlocks = this.blocks;
    else for (const [k, v] of this.blocks) if (!this.nextBlocks.has(k)) this.nextBlocks.set(k, v);
    this.nextStates.push(this.state());
    this.carrySchemas();
  }

  /** Keeps the schemas this compile may take over for the next one too (a body that builds none). */
  carrySchemas(): void {
    if (this.nextSchemas.size === 0) this.nextSchemas = this.schemas;
    else for (const [k, v] of this.schemas) if (!this.nextSchemas.has(k)) this.nextSchemas.set(k, v);
  }

  /** Starts a compile: what the last one kept becomes what this one may take over. */
  begin(): void {
    if (this.nextInstances.size || this.nextChannels.size || this.nextPrograms.size || this.nextSchemas.size || this.nextBlocks.size || this.nextStates.length) {
      this.programs = this.nextPrograms;
      this.instances = this.nextInstances;
      this.channels = this.nextChannels;
      this.schemas = this.nextSchemas;
      this.blocks = this.nextBlocks;
      this.states = this.nextStates;
    }
    this.nextBlocks = new Map();
    this.nextStates = [];
    this.nextPrograms = new Map();
    this.nextInstances = new Map();
    this.nextChannels = new Map();
    this.nextSchemas = new Map();
    this.stats.reused = 0;
    this.stats.built = 0;
    this.stats.blocks = 0;
  }
}
