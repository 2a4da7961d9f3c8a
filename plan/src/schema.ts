// The JSON Schema (draft 2020-12) of the deployment plan, as data.
//
// This object is the single source of the plan's shape at run time:
// `validatePlan` interprets it, and spec/plan.schema.json is this object
// written out as canonical JSON (a test keeps the file and this object equal,
// and another checks that every field of the TypeScript types in types.ts
// appears here). Only the keywords the interpreter in validate.ts supports
// are used: type, properties, required, additionalProperties, items, enum,
// const, $ref, oneOf, minimum, pattern, minLength.

type S = Record<string, unknown>;

const str = (description?: string): S => (description ? { type: 'string', description } : { type: 'string' });
const int = (minimum = 0): S => ({ type: 'integer', minimum });
const num = (): S => ({ type: 'number' });
const bool = (): S => ({ type: 'boolean' });
const arr = (items: S): S => ({ type: 'array', items });
const ref = (name: string): S => ({ $ref: `#/$defs/${name}` });
const en = (...values: string[]): S => ({ type: 'string', enum: values });
const sha256 = (): S => ({ type: 'string', pattern: '^([0-9a-f]{64})?$' });

/** A closed object: every listed property is required unless named in `optional`. */
function obj(properties: Record<string, S>, optional: string[] = [], description?: string): S {
  const required = Object.keys(properties).filter((k) => !optional.includes(k));
  const o: S = { type: 'object', properties, required, additionalProperties: false };
  if (description) o.description = description;
  return o;
}

const jsonValue: S = {
  description: 'Any JSON value.',
  type: ['null', 'boolean', 'number', 'string', 'array', 'object'],
};

const messageSchemaVariants: S[] = [
  obj({ kind: { const: 'bool' } }),
  obj({ kind: { const: 'int' }, min: num(), max: num() }, ['min', 'max']),
  obj({ kind: { const: 'int64' }, min: num(), max: num() }, ['min', 'max']),
  obj({ kind: { const: 'float' }, min: num(), max: num() }, ['min', 'max']),
  obj({ kind: { const: 'string' }, min_len: int(), max_len: int(), pattern: str() }, ['min_len', 'max_len', 'pattern']),
  obj({ kind: { const: 'bytes' }, min_len: int(), max_len: int() }, ['min_len', 'max_len']),
  obj({ kind: { const: 'list' }, element: ref('MessageSchema'), min_items: int(), max_items: int() }, ['min_items', 'max_items']),
  obj(
    { kind: { const: 'map' }, key: ref('MessageSchema'), value: ref('MessageSchema'), min_entries: int(), max_entries: int() },
    ['min_entries', 'max_entries'],
  ),
  obj({ kind: { const: 'record' }, fields: arr(obj({ name: str(), optional: bool(), type: ref('MessageSchema') })) }),
  obj({ kind: { const: 'enum' }, members: arr(str()) }),
  obj({ kind: { const: 'union' }, variants: arr(obj({ name: str(), type: ref('MessageSchema') }, ['type'])) }),
  obj({ kind: { const: 'ref' }, name: str() }),
];

const planFile = obj({ path: str('Absolute path in the guest.'), content: str(), mode: { type: 'string', pattern: '^0[0-7]{3}$' } });

const defs: Record<string, S> = {
  JsonValue: jsonValue,
  PlanTarget: obj(
    {
      name: str(),
      backend: en('kvm', 'xen', 'kubevirt'),
      memory_bytes: int(),
      vcpus: int(),
      vcpu_overcommit: num(),
      namespace: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$', description: 'kubevirt: the Kubernetes namespace (format 1.2).' },
      context: str('kubevirt: the kubeconfig context; absent means the current one (format 1.2).'),
      registry: str('kubevirt: the container registry and path images are pulled from (format 1.2).'),
      host: { type: 'string', pattern: '^ssh://', maxLength: 400, description: 'kvm, xen: the host the deployment runs on, reached over SSH (ssh://[user@]host[:port][/path]).' },
      link: { type: 'string', pattern: ':[0-9]{1,5}$', maxLength: 300, description: "kvm: where the target's link between hosts is reached (host:port, [ipv6]:port, or :port for its SSH host's address)." },
    },
    ['namespace', 'context', 'registry', 'host', 'link'],
  ),
  PlanDigests: obj({ sources: sha256(), invariants: sha256(), plan: sha256() }),
  PlanSource: obj({ path: str('Workspace-relative path, or std:<module>.'), sha256: sha256() }),
  PlanFile: planFile,
  PlanImage: obj({
    name: str(),
    base: en('busybox-static'),
    kernel: str(),
    modules: arr(str()),
    files: arr(ref('PlanFile')),
    digest: sha256(),
  }),
  PlanTemplate: obj({ id: str(), image: str(), memory_bytes: int(), vcpus: int(1), port_slots: int(1), instance_count: int() }),
  PlanProgram: obj({ argv: arr(str()), env: { type: 'object', additionalProperties: str() }, files: arr(ref('PlanFile')) }),
  PlanPort: obj(
    {
      name: str(),
      direction: en('provide', 'require'),
      protocol: str(),
      slot: int(1),
      channels: arr(str()),
      exposed_on: int(1),
      egress: str(),
    },
    ['exposed_on', 'egress'],
  ),
  PlanInstance: obj(
    {
      id: str('Dotted path from the root system.'),
      component: str(),
      template: str(),
      memory_bytes: int(),
      vcpus: int(1),
      mode: en('single', 'replicas', 'per_session', 'created'),
      replicas: int(),
      max_sessions: int(),
      created_by: ref('PlanCreatedBy'),
      max_instances: int(),
      restart: obj({ policy: en('always', 'on_failure', 'never'), max_retries: int() }),
      label: str(),
      declassifies: arr(obj({ from: str(), to: str(), ports: arr(str()) }, ['ports'])),
      params: { type: 'object', additionalProperties: ref('JsonValue') },
      sensitive_params: arr(str()),
      program: ref('PlanProgram'),
      ports: arr(ref('PlanPort')),
      digest: sha256(),
      target: str('The target (one of `targets`) the instance is placed on; only in a plan with `targets`.'),
    },
    ['max_sessions', 'label', 'created_by', 'max_instances', 'target'],
  ),
  PlanCreatedBy: obj({ instance: str(), port: str(), max: int(1), params: { type: 'object', additionalProperties: ref('MessageSchema') }, detached: bool() }),
  PlanEndpoint: obj({ instance: str(), port: str() }),
  PlanOperation: obj({ name: str(), kind: en('call', 'send', 'notify'), input: str(), output: str() }, ['output']),
  OrderAutomaton: obj({
    transitions: arr({ type: 'object', additionalProperties: int() }),
    accepting: arr(int()),
  }),
  ChannelInvariants: obj({
    max_message_bytes: int(),
    rate: { type: ['object', 'null'], properties: { per_second: num(), burst: int() }, required: ['per_second', 'burst'], additionalProperties: false },
    timeout_ms: int(),
    max_inflight: int(),
    order: { oneOf: [{ type: 'null' }, ref('OrderAutomaton')] },
  }),
  PlanChannel: obj({
    id: str('<from.instance>.<from.port>-><to.instance>.<to.port>'),
    from: ref('PlanEndpoint'),
    to: ref('PlanEndpoint'),
    protocol: str(),
    ops: arr(ref('PlanOperation')),
    invariants: ref('ChannelInvariants'),
    declassifies: arr(obj({ from: str(), to: str() })),
    query: { const: true },
    candidate: obj({ initial: bool() }),
  }, ['declassifies', 'query', 'candidate']),
  PlanExposure: obj({
    host_port: int(1),
    transport: en('tcp'),
    instance: str(),
    port: str(),
    protocol: str(),
    ops: arr(ref('PlanOperation')),
    invariants: ref('ChannelInvariants'),
    connections: ref('ExposureConnections'),
  }, ['connections']),
  PlanEgress: obj({
    name: str(),
    instance: str(),
    port: str(),
    protocol: str(),
    kind: en('tcp', 'http'),
    destination: ref('PlanEgressDestination'),
    label: str(),
    ops: arr(ref('PlanOperation')),
    invariants: ref('ChannelInvariants'),
    connections: ref('ExposureConnections'),
  }, ['label', 'connections']),
  PlanEgressDestination: obj({ scheme: en('tcp', 'http', 'https'), host: { type: 'string', minLength: 1 }, port: int(1), path: { type: 'string', pattern: '^/' } }, ['path']),
  ExposureConnections: obj(
    {
      max: int(1),
      rate: { type: 'object', properties: { per_second: num(), burst: int(1) }, required: ['per_second', 'burst'], additionalProperties: false },
      bytes_per_second: int(1),
      idle_timeout_ms: int(1),
    },
    ['max', 'rate', 'bytes_per_second', 'idle_timeout_ms'],
  ),
  PlanCheck: obj(
    {
      id: str(),
      kind: en('reachability', 'exposure', 'flow', 'resources', 'call-cycles', 'wiring', 'capability', 'placement'),
      status: en('pass', 'fail', 'warn'),
      summary: str(),
      counterexample: arr(obj({ instance: str(), channel: str(), note: str() }, ['instance', 'channel', 'note'])),
    },
    ['counterexample'],
  ),
  PlanResources: obj({
    template_memory_bytes: int(),
    estimated_private_bytes: int(),
    estimated_total_bytes: int(),
    worst_case_bytes: int(),
    committed_vcpus: int(),
  }),
  MessageSchema: { oneOf: messageSchemaVariants },
  PlanPolicies: obj({
    rules: arr(ref('PlanPolicyRule')),
    labels: obj({ labels: arr(str()), edges: arr(arr(str())) }),
  }),
  PlanPolicyRule: {
    oneOf: [
      obj({ kind: { const: 'only' }, scope: str(), mode: en('from', 'through', 'to'), target: str(), sources: arr(str()) }),
      obj({ kind: { const: 'no_path' }, scope: str(), from: str(), to: str() }),
      obj({ kind: { const: 'exposed_only' }, scope: str(), ports: arr(obj({ instance: str(), port: str() })) }),
      obj({ kind: { const: 'egress_only' }, scope: str(), names: arr(str()) }),
      obj({ kind: { const: 'no_flow' }, scope: str(), label: str(), to: str() }),
      obj({ kind: { const: 'budget' }, scope: str(), resource: en('memory', 'vcpus'), value: int(), raw: str() }),
      obj({ kind: { const: 'apart' }, scope: str(), instances: arr(str()) }),
      obj({ kind: { const: 'label_on' }, scope: str(), label: str(), targets: arr(str()) }),
    ],
  },
};

export const PLAN_SCHEMA_ID = 'https://mcl.dev/schemas/plan-1.0.json';

export const planSchema: S = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: PLAN_SCHEMA_ID,
  title: 'mcl deployment plan',
  description: 'The deployment plan produced by `mclc plan --out` (format_version 1.x). See plan/src/types.ts.',
  ...obj({
    format_version: { type: 'string', pattern: '^1\\.[0-9]+$' },
    mclc_version: str(),
    system: str(),
    target: ref('PlanTarget'),
    targets: arr(ref('PlanTarget')),
    digests: ref('PlanDigests'),
    sources: arr(ref('PlanSource')),
    images: arr(ref('PlanImage')),
    templates: arr(ref('PlanTemplate')),
    instances: arr(ref('PlanInstance')),
    channels: arr(ref('PlanChannel')),
    exposures: arr(ref('PlanExposure')),
    egresses: arr(ref('PlanEgress')),
    schemas: { type: 'object', additionalProperties: ref('MessageSchema') },
    checks: arr(ref('PlanCheck')),
    resources: ref('PlanResources'),
    policies: ref('PlanPolicies'),
    prior_state: {
      type: ['object', 'null'],
      properties: { lineage: str(), serial: int() },
      required: ['lineage', 'serial'],
      additionalProperties: false,
    },
    prior_states: {
      type: 'object',
      additionalProperties: {
        type: ['object', 'null'],
        properties: { lineage: str(), serial: int() },
        required: ['lineage', 'serial'],
        additionalProperties: false,
      },
    },
    remote_instances: arr(ref('PlanInstance')),
  }, ['policies', 'egresses', 'targets', 'prior_states', 'remote_instances']),
  $defs: defs,
};
