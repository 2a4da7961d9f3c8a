// Validation of plan and state documents read from disk.
//
// `validatePlan` never throws: it returns the plan when the document is a
// well-formed plan of a format version this code understands, and otherwise a
// list of errors, each naming the JSON path of the problem. The shape is
// checked by interpreting the JSON Schema in schema.ts (the same schema that
// is published as spec/plan.schema.json), then cross-references that a schema
// cannot express are checked (ids unique, channels pointing at existing
// instances and ports, templates that exist).

import { planSchema } from './schema';
import { PLAN_FORMAT_VERSION, STATE_FORMAT_VERSION, type DeploymentState, type Plan } from './types';

export interface PlanValidationError {
  /** JSON path of the offending value, e.g. `$.instances[2].memory_bytes`. */
  path: string;
  message: string;
}

export interface PlanValidationResult {
  plan?: Plan;
  errors: PlanValidationError[];
}

type S = Record<string, unknown>;

const MAX_ERRORS = 50;

/** Parses `"1.2"` into [1, 2], or undefined when it is not `major.minor`. */
export function parseFormatVersion(v: unknown): [number, number] | undefined {
  if (typeof v !== 'string') return undefined;
  const m = /^(\d+)\.(\d+)$/.exec(v);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/**
 * Checks the format version against the one this code writes: an unknown major
 * is refused; a higher minor is accepted (minor versions only add optional fields).
 * Returns an error message, or undefined when the version is readable; `newerMinor`
 * tells whether unknown fields must be tolerated.
 */
function checkVersion(v: unknown, supported: string, what: string): { error?: string; newerMinor: boolean } {
  const mine = parseFormatVersion(supported)!;
  const theirs = parseFormatVersion(v);
  if (theirs === undefined) {
    return {
      error: `format_version must be a "major.minor" string such as "${supported}", found ${v === undefined ? 'nothing' : JSON.stringify(v)}`,
      newerMinor: false,
    };
  }
  if (theirs[0] !== mine[0]) {
    const newer = theirs[0] > mine[0];
    return {
      error:
        `${what} format_version ${theirs.join('.')} is not supported: this mclc reads ${mine[0]}.x ` +
        (newer ? '(the file was written by a newer mclc; upgrade mclc)' : '(the file was written by an older mclc; plan again)'),
      newerMinor: false,
    };
  }
  return { newerMinor: theirs[1] > mine[1] };
}

/** Validates a plan document: a parsed JSON value, or the text of a plan file. */
export function validatePlan(json: unknown): PlanValidationResult {
  let doc = json;
  if (typeof json === 'string') {
    try {
      doc = JSON.parse(json);
    } catch (e) {
      return { errors: [{ path: '$', message: `the plan is not valid JSON: ${(e as Error).message}` }] };
    }
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    return { errors: [{ path: '$', message: `a plan must be a JSON object, found ${typeName(doc)}` }] };
  }
  const version = checkVersion((doc as S).format_version, PLAN_FORMAT_VERSION, 'plan');
  if (version.error) return { errors: [{ path: '$.format_version', message: version.error }] };

  const errors: PlanValidationError[] = [];
  const v = new SchemaInterpreter(planSchema, version.newerMinor, errors);
  v.check(planSchema, doc, '$');
  if (errors.length === 0) crossCheck(doc as Plan, errors);
  return errors.length === 0 ? { plan: doc as Plan, errors } : { errors: errors.slice(0, MAX_ERRORS) };
}

export interface StateValidationResult {
  state?: DeploymentState;
  errors: PlanValidationError[];
}

/**
 * Validates a deployment state, every part that a reader uses: the top level
 * (lineage, serial, backend, plan digest, system) and each recorded instance,
 * channel and exposure against the plan schema's definitions, so that no
 * reader meets a missing or mistyped field (`instances: null`, an instance
 * without ports). The patterns of digests and names are not checked: a state
 * only compares them for equality. `backend_data` belongs to the backend,
 * which checks what it reads of it.
 */
export function validateState(json: unknown): StateValidationResult {
  let doc = json;
  if (typeof json === 'string') {
    try {
      doc = JSON.parse(json);
    } catch (e) {
      return { errors: [{ path: '$', message: `the state is not valid JSON: ${(e as Error).message}` }] };
    }
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    return { errors: [{ path: '$', message: `a state must be a JSON object, found ${typeName(doc)}` }] };
  }
  const s = doc as S;
  const version = checkVersion(s.format_version, STATE_FORMAT_VERSION, 'state');
  if (version.error) return { errors: [{ path: '$.format_version', message: version.error }] };
  const errors: PlanValidationError[] = [];
  if (typeof s.lineage !== 'string' || s.lineage === '') errors.push({ path: '$.lineage', message: 'lineage must be a non-empty string' });
  if (!Number.isInteger(s.serial) || (s.serial as number) < 0) errors.push({ path: '$.serial', message: 'serial must be a non-negative integer' });
  for (const key of ['instances', 'channels', 'exposures']) {
    if (!Array.isArray(s[key])) errors.push({ path: `$.${key}`, message: `${key} must be an array` });
  }
  if (typeof s.backend !== 'string') errors.push({ path: '$.backend', message: 'backend must be a string' });
  for (const key of ['plan_digest', 'system']) {
    if (s[key] !== null && typeof s[key] !== 'string') errors.push({ path: `$.${key}`, message: `${key} must be a string or null` });
  }
  if (s.moved !== undefined) checkMoved(s.moved, errors);
  if (errors.length === 0) {
    const v = new SchemaInterpreter(planSchema, version.newerMinor, errors, false);
    const defs = planSchema.$defs as Record<string, S>;
    for (const [key, def] of [['instances', 'PlanInstance'], ['channels', 'PlanChannel'], ['exposures', 'PlanExposure']] as const) {
      (s[key] as unknown[]).forEach((item, i) => v.check(defs[def], item, `$.${key}[${i}]`));
    }
  }
  return errors.length === 0 ? { state: doc as DeploymentState, errors } : { errors: errors.slice(0, MAX_ERRORS) };
}

/** Longest target name or time a `moved` entry may carry, and most entries (one per clone). */
const MOVED_MAX_TEXT = 256;
const MOVED_MAX_ENTRIES = 100_000;

/**
 * The state's `moved` (clones moved to another target by `mclc migrate`): each entry an instance,
 * a clone index, the target it runs on and when it moved, one entry per clone. Nothing on disk is
 * trusted: a planted entry of another shape is an error, not something acted on.
 */
function checkMoved(moved: unknown, errors: PlanValidationError[]): void {
  if (!Array.isArray(moved) || moved.length > MOVED_MAX_ENTRIES) {
    errors.push({ path: '$.moved', message: `moved must be an array of at most ${MOVED_MAX_ENTRIES} entries` });
    return;
  }
  const seen = new Set<string>();
  moved.forEach((m: unknown, i) => {
    const path = `$.moved[${i}]`;
    if (m === null || typeof m !== 'object' || Array.isArray(m)) return void errors.push({ path, message: 'an entry of moved must be an object' });
    const e = m as S;
    const extra = Object.keys(e).filter((k) => !['instance', 'clone', 'to', 'at'].includes(k));
    if (extra.length) errors.push({ path, message: `unknown field(s) ${extra.join(', ')}` });
    const text = (k: string) => typeof e[k] === 'string' && (e[k] as string).length > 0 && (e[k] as string).length <= MOVED_MAX_TEXT;
    if (!text('instance')) errors.push({ path: `${path}.instance`, message: 'instance must be a non-empty string' });
    if (!Number.isInteger(e.clone) || (e.clone as number) < 0) errors.push({ path: `${path}.clone`, message: 'clone must be a non-negative integer' });
    if (!text('to')) errors.push({ path: `${path}.to`, message: 'to must be a target name' });
    if (!text('at') || Number.isNaN(Date.parse(e.at as string))) errors.push({ path: `${path}.at`, message: 'at must be an ISO date and time' });
    const key = `${String(e.instance)}#${String(e.clone)}`;
    if (seen.has(key)) errors.push({ path, message: `${String(e.instance)}[${String(e.clone)}] is recorded as moved twice` });
    seen.add(key);
  });
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a number';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

function matchesType(t: string, v: unknown): boolean {
  switch (t) {
    case 'null':
      return v === null;
    case 'boolean':
      return typeof v === 'boolean';
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'string':
      return typeof v === 'string';
    case 'array':
      return Array.isArray(v);
    case 'object':
      return v !== null && typeof v === 'object' && !Array.isArray(v);
    default:
      return false;
  }
}

/** Interprets the subset of JSON Schema used by schema.ts. */
class SchemaInterpreter {
  constructor(
    private readonly root: S,
    /** When the document has a newer minor version, unknown properties are allowed. */
    private readonly tolerateUnknown: boolean,
    private readonly errors: PlanValidationError[],
    /** False where only equality of the strings matters (a recorded state), not their form. */
    private readonly checkPatterns = true,
  ) {}

  private add(path: string, message: string): void {
    if (this.errors.length < MAX_ERRORS) this.errors.push({ path, message });
  }

  private resolve(schema: S): S {
    let s = schema;
    while (typeof s.$ref === 'string') {
      const name = s.$ref.replace('#/$defs/', '');
      s = (this.root.$defs as Record<string, S>)[name];
    }
    return s;
  }

  check(schemaIn: S, v: unknown, path: string): void {
    const schema = this.resolve(schemaIn);
    if (schema.oneOf) return this.checkOneOf(schema.oneOf as S[], v, path);
    if ('const' in schema && v !== schema.const) {
      return this.add(path, `expected ${JSON.stringify(schema.const)}, found ${JSON.stringify(v)}`);
    }
    if (schema.type !== undefined) {
      const types = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
      if (!types.some((t) => matchesType(t, v))) {
        const want = types.map((t) => (t === 'integer' ? 'an integer' : t === 'null' ? 'null' : `a ${t}`)).join(' or ');
        return this.add(path, `expected ${want}, found ${typeName(v)}`);
      }
    }
    if (schema.enum && !(schema.enum as unknown[]).includes(v)) {
      return this.add(path, `expected one of ${(schema.enum as string[]).map((e) => JSON.stringify(e)).join(', ')}, found ${JSON.stringify(v)}`);
    }
    if (typeof v === 'number' && typeof schema.minimum === 'number' && v < schema.minimum) {
      this.add(path, `must be at least ${schema.minimum}, found ${v}`);
    }
    if (typeof v === 'string') {
      if (this.checkPatterns && typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(v)) {
        this.add(path, `${JSON.stringify(v.length > 80 ? v.slice(0, 77) + '...' : v)} does not match the pattern ${schema.pattern}`);
      }
      if (typeof schema.minLength === 'number' && v.length < schema.minLength) this.add(path, `must have at least ${schema.minLength} characters`);
    }
    if (Array.isArray(v) && schema.items) {
      v.forEach((item, i) => this.check(schema.items as S, item, `${path}[${i}]`));
    }
    if (matchesType('object', v)) this.checkObject(schema, v as S, path);
  }

  private checkObject(schema: S, v: S, path: string): void {
    const props = (schema.properties ?? {}) as Record<string, S>;
    for (const r of (schema.required ?? []) as string[]) {
      if (!(r in v)) this.add(path, `missing required field "${r}"`);
    }
    for (const [k, val] of Object.entries(v)) {
      const sub = `${path}.${k}`;
      if (k in props) this.check(props[k], val, sub);
      else if (schema.additionalProperties === false) {
        if (!this.tolerateUnknown) this.add(sub, `unknown field "${k}"`);
      } else if (schema.additionalProperties && typeof schema.additionalProperties === 'object') {
        this.check(schema.additionalProperties as S, val, sub);
      }
    }
  }

  private checkOneOf(alternatives: S[], v: unknown, path: string): void {
    const results = alternatives.map((alt) => {
      const errs: PlanValidationError[] = [];
      new SchemaInterpreter(this.root, this.tolerateUnknown, errs, this.checkPatterns).check(alt, v, path);
      return errs;
    });
    const passing = results.filter((r) => r.length === 0).length;
    if (passing === 1) return;
    if (passing > 1) return this.add(path, 'matches more than one alternative of the schema');
    // Report the errors of the alternative selected by a `kind` discriminator when there is one.
    const kind = matchesType('object', v) ? (v as S).kind : undefined;
    const idx = alternatives.findIndex((alt) => {
      const r = this.resolve(alt);
      return (r.properties as Record<string, S> | undefined)?.kind?.const === kind;
    });
    if (idx >= 0) {
      for (const e of results[idx]) this.add(e.path, e.message);
      return;
    }
    if (kind !== undefined) return this.add(`${path}.kind`, `unknown kind ${JSON.stringify(kind)}`);
    // Otherwise report the alternative that got furthest (fewest errors).
    let best = 0;
    results.forEach((r, i) => {
      if (r.length < results[best].length) best = i;
    });
    for (const e of results[best]) this.add(e.path, e.message);
  }
}

/** Consistency between the parts of a plan that a schema cannot check. */
function crossCheck(plan: Plan, errors: PlanValidationError[]): void {
  const add = (path: string, message: string) => {
    if (errors.length < MAX_ERRORS) errors.push({ path, message });
  };
  const unique = <T>(items: T[], key: (t: T) => string | number, path: string, what: string) => {
    const seen = new Set<string | number>();
    items.forEach((item, i) => {
      const k = key(item);
      if (seen.has(k)) add(`${path}[${i}]`, `duplicate ${what} ${JSON.stringify(k)}`);
      seen.add(k);
    });
  };
  unique(plan.instances, (i) => i.id, '$.instances', 'instance id');
  unique(plan.channels, (c) => c.id, '$.channels', 'channel id');
  unique(plan.templates, (t) => t.id, '$.templates', 'template id');
  unique(plan.images, (t) => t.name, '$.images', 'image name');
  unique(plan.exposures, (e) => e.host_port, '$.exposures', 'host port');

  const templates = new Set(plan.templates.map((t) => t.id));
  const images = new Set(plan.images.map((i) => i.name));
  // A part's channels may end at an instance of another target (`remote_instances`), never started here.
  const remote = plan.remote_instances ?? [];
  const localIds = new Set(plan.instances.map((i) => i.id));
  unique(remote, (i) => i.id, '$.remote_instances', 'remote instance id');
  remote.forEach((r, i) => {
    if (localIds.has(r.id)) add(`$.remote_instances[${i}]`, `instance "${r.id}" is both here and on another target`);
    if (r.target === undefined || r.target === plan.target.name) add(`$.remote_instances[${i}].target`, `remote instance "${r.id}" must name the other target it runs on`);
  });
  const instances = new Map([...remote, ...plan.instances].map((i) => [i.id, i]));
  plan.templates.forEach((t, i) => {
    if (!images.has(t.image)) add(`$.templates[${i}].image`, `template "${t.id}" uses image "${t.image}", which the plan does not list`);
  });
  plan.instances.forEach((inst, i) => {
    if (!templates.has(inst.template)) add(`$.instances[${i}].template`, `instance "${inst.id}" uses template "${inst.template}", which the plan does not list`);
    const slots = new Set<number>();
    inst.ports.forEach((p, j) => {
      if (slots.has(p.slot)) add(`$.instances[${i}].ports[${j}].slot`, `slot ${p.slot} is used twice in instance "${inst.id}"`);
      slots.add(p.slot);
    });
  });
  const endpoint = (e: { instance: string; port: string }, path: string, direction: 'provide' | 'require') => {
    const inst = instances.get(e.instance);
    if (!inst) return add(path, `refers to instance "${e.instance}", which the plan does not list`);
    const port = inst.ports.find((p) => p.name === e.port);
    if (!port) return add(path, `instance "${e.instance}" has no port "${e.port}"`);
    if (port.direction !== direction) add(path, `port "${e.instance}.${e.port}" is a ${port.direction} port, expected ${direction}`);
  };
  plan.channels.forEach((c, i) => {
    endpoint(c.from, `$.channels[${i}].from`, 'require');
    endpoint(c.to, `$.channels[${i}].to`, 'provide');
    const expected = `${c.from.instance}.${c.from.port}->${c.to.instance}.${c.to.port}`;
    if (c.id !== expected) add(`$.channels[${i}].id`, `channel id "${c.id}" should be "${expected}"`);
  });
  plan.exposures.forEach((e, i) => endpoint(e, `$.exposures[${i}]`, 'provide'));
  // An egress carries a required port's traffic: the port is its own and has no channel besides.
  const egresses = plan.egresses ?? [];
  unique(egresses, (e) => e.name, '$.egresses', 'egress name');
  const wired = new Set(plan.channels.map((c) => `${c.from.instance}.${c.from.port}`));
  egresses.forEach((e, i) => {
    endpoint(e, `$.egresses[${i}]`, 'require');
    if (wired.has(`${e.instance}.${e.port}`)) add(`$.egresses[${i}]`, `port "${e.instance}.${e.port}" has a channel and an egress`);
    const port = instances.get(e.instance)?.ports.find((p) => p.name === e.port);
    if (port && port.egress !== e.name) add(`$.egresses[${i}]`, `port "${e.instance}.${e.port}" does not name egress "${e.name}"`);
  });
}
