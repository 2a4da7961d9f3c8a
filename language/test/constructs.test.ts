// One test per construct of ast.ts: the parser produces exactly the documented shape.

import { describe, expect, it } from 'vitest';
import { parse, type ComponentDecl, type Decl, type SystemDecl, type TargetDecl, type TypeDecl } from '../src/index';

function ok(text: string) {
  const r = parse(text, 'test.mcl');
  expect(r.diagnostics.map((d) => `${d.code} ${d.message}`)).toEqual([]);
  return r.file;
}
function decl<D extends Decl>(text: string): D {
  return ok(text).decls[0] as D;
}
function typeOf(src: string) {
  return decl<TypeDecl>(`type T = ${src}`).type;
}
function member(src: string) {
  return decl<ComponentDecl>(`component C { ${src} }`).members[0];
}
function sysMember(src: string) {
  return decl<SystemDecl>(`system S { ${src} }`).members[0];
}
function value(src: string) {
  return decl<TargetDecl>(`target t { v ${src} }`).props[0].value;
}

describe('files and imports', () => {
  it('parses item imports with aliases and glob imports', () => {
    const f = ok('import std.http.{Http, Request as Req}\nimport shop.types.*');
    expect(f.imports).toHaveLength(2);
    expect(f.imports[0]).toMatchObject({
      kind: 'Import',
      module: { kind: 'QualifiedName', parts: [{ name: 'std' }, { name: 'http' }] },
      items: [
        { kind: 'ImportItem', name: { name: 'Http' } },
        { kind: 'ImportItem', name: { name: 'Request' }, alias: { name: 'Req' } },
      ],
    });
    expect(f.imports[0].items[0]).not.toHaveProperty('alias');
    expect(f.imports[1]).toMatchObject({ module: { parts: [{ name: 'shop' }, { name: 'types' }] }, items: '*' });
  });

  it('gives the file its path, span and comments in order', () => {
    const text = '// a\n/// b\ntype T = int /* c */\n';
    const f = ok(text);
    expect(f).toMatchObject({ kind: 'SourceFile', path: 'test.mcl', span: { start: 0, end: text.length } });
    expect(f.comments.map((c) => [c.kind, c.text])).toEqual([
      ['line', '// a'],
      ['doc', '/// b'],
      ['block', '/* c */'],
    ]);
    expect(f.comments[1].span).toEqual({ start: 5, end: 10 });
  });

  it('attaches consecutive doc comments to the next declaration', () => {
    const d = decl<TypeDecl>('/// First line.\n///   Indented.\n////not doc\ntype T = int');
    expect(d.doc).toBe('First line.\n  Indented.');
    expect(decl<TypeDecl>('type T = int').doc).toBeUndefined();
  });

  it('accepts an empty file and a file of comments', () => {
    expect(ok('').decls).toEqual([]);
    expect(ok('// nothing\n/* at all */').comments).toHaveLength(2);
  });
});

describe('types', () => {
  it('parses every primitive with constraints', () => {
    expect(typeOf('bool')).toMatchObject({ kind: 'PrimitiveType', name: 'bool', constraints: [] });
    expect(typeOf('int(0..100)')).toMatchObject({
      name: 'int',
      constraints: [{ kind: 'Range', min: { kind: 'Int', value: 0 }, max: { kind: 'Int', value: 100 } }],
    });
    expect(typeOf('string(max 64, pattern "^[a-z]+$")')).toMatchObject({
      name: 'string',
      constraints: [
        { kind: 'Bound', bound: 'max', value: { value: 64 } },
        { kind: 'Pattern', pattern: { kind: 'String', value: '^[a-z]+$' } },
      ],
    });
    expect(typeOf('bytes(min 1B, max 1MiB)')).toMatchObject({
      name: 'bytes',
      constraints: [{ bound: 'min', value: { kind: 'Size', bytes: 1 } }, { bound: 'max', value: { kind: 'Size', bytes: 1048576 } }],
    });
    expect(typeOf('float(..1.5)')).toMatchObject({ constraints: [{ kind: 'Range', max: { kind: 'Float', value: 1.5 } }] });
    expect((typeOf('int(1..)') as { constraints: object[] }).constraints[0]).not.toHaveProperty('max');
    expect(typeOf('int(-5..0x10)')).toMatchObject({ constraints: [{ min: { value: -5 }, max: { value: 16 } }] });
    expect(typeOf('string(1KiB..1MiB)')).toMatchObject({ constraints: [{ min: { bytes: 1024 }, max: { bytes: 1048576 } }] });
  });

  it('parses list and map types with constraints', () => {
    expect(typeOf('list<Item>(max 100)')).toMatchObject({
      kind: 'ListType',
      element: { kind: 'NamedType', name: { parts: [{ name: 'Item' }] } },
      constraints: [{ kind: 'Bound', bound: 'max' }],
    });
    expect(typeOf('map<string(max 64), list<int>>(max 32)')).toMatchObject({
      kind: 'MapType',
      key: { kind: 'PrimitiveType', name: 'string' },
      value: { kind: 'ListType', element: { name: 'int' } },
      constraints: [{ bound: 'max' }],
    });
  });

  it('parses records with optional fields, docs and every separator', () => {
    const t = typeOf('{\n  /// The name.\n  name: string\n  age?: int, from: bool; path: a.B\n}');
    expect(t).toMatchObject({
      kind: 'RecordType',
      fields: [
        { kind: 'Field', name: { name: 'name' }, optional: false, doc: 'The name.' },
        { name: { name: 'age' }, optional: true },
        { name: { name: 'from' } },
        { name: { name: 'path' }, type: { kind: 'NamedType', name: { parts: [{ name: 'a' }, { name: 'B' }] } } },
      ],
    });
    expect(typeOf('{}')).toMatchObject({ kind: 'RecordType', fields: [] });
  });

  it('parses enums and unions', () => {
    expect(typeOf('enum { GET, POST PUT; }')).toMatchObject({
      kind: 'EnumType',
      members: [{ name: 'GET' }, { name: 'POST' }, { name: 'PUT' }],
    });
    const u = typeOf('union { ok: Result, err: { code: int }\n empty }') as { variants: object[] };
    expect(u).toMatchObject({
      kind: 'UnionType',
      variants: [
        { kind: 'Variant', name: { name: 'ok' }, type: { kind: 'NamedType' } },
        { name: { name: 'err' }, type: { kind: 'RecordType' } },
        { name: { name: 'empty' } },
      ],
    });
    expect(u.variants[2]).not.toHaveProperty('type');
  });

  it('gives every type node an exact span', () => {
    const text = 'type T = list<int(0..9)>(max 3)';
    const t = decl<TypeDecl>(text);
    expect(text.slice(t.type.span.start, t.type.span.end)).toBe('list<int(0..9)>(max 3)');
    expect(text.slice(t.span.start, t.span.end)).toBe(text);
    expect(text.slice(t.name.span.start, t.name.span.end)).toBe('T');
  });
});

describe('values', () => {
  it('parses every literal', () => {
    expect(value('42')).toEqual({ kind: 'Int', raw: '42', value: 42, span: expect.any(Object) });
    expect(value('-1')).toMatchObject({ kind: 'Int', value: -1 });
    expect(value('1_000')).toMatchObject({ kind: 'Int', raw: '1_000', value: 1000 });
    expect(value('0x1f')).toMatchObject({ kind: 'Int', value: 31 });
    expect(value('1.5')).toMatchObject({ kind: 'Float', value: 1.5 });
    expect(value('2e3')).toMatchObject({ kind: 'Float', value: 2000 });
    expect(value('"a\\n\\u{1F600}"')).toMatchObject({ kind: 'String', raw: '"a\\n\\u{1F600}"', value: 'a\n😀' });
    expect(value('"""\nraw \\n "q"\n"""')).toMatchObject({ kind: 'String', value: 'raw \\n "q"\n' });
    expect(value('true')).toMatchObject({ kind: 'Bool', value: true });
    expect(value('false')).toMatchObject({ kind: 'Bool', value: false });
    expect(value('512B')).toMatchObject({ kind: 'Size', amount: 512, unit: 'B', bytes: 512 });
    expect(value('64KiB')).toMatchObject({ kind: 'Size', unit: 'KiB', bytes: 65536 });
    expect(value('256MiB')).toMatchObject({ kind: 'Size', bytes: 256 * 1024 ** 2 });
    expect(value('2GiB')).toMatchObject({ kind: 'Size', bytes: 2 * 1024 ** 3 });
    expect(value('1TiB')).toMatchObject({ kind: 'Size', bytes: 1024 ** 4 });
    expect(value('200ms')).toMatchObject({ kind: 'Duration', amount: 200, unit: 'ms', ms: 200 });
    expect(value('2s')).toMatchObject({ kind: 'Duration', ms: 2000 });
    expect(value('5min')).toMatchObject({ kind: 'Duration', unit: 'min', ms: 300000 });
    expect(value('1h')).toMatchObject({ kind: 'Duration', ms: 3600000 });
    expect(value('500/s')).toMatchObject({ kind: 'Rate', count: 500, per: 's', perSecond: 500 });
    expect(value('30/min')).toMatchObject({ kind: 'Rate', per: 'min', perSecond: 0.5 });
    expect(value('1000/h')).toMatchObject({ kind: 'Rate', per: 'h', perSecond: 1000 / 3600 });
  });

  it('parses lists, maps and references', () => {
    expect(value('[1, "a", [true],]')).toMatchObject({
      kind: 'List',
      items: [{ kind: 'Int' }, { kind: 'String' }, { kind: 'List', items: [{ kind: 'Bool' }] }],
    });
    expect(value('{ "k": 1, other = 2 }')).toMatchObject({
      kind: 'Map',
      entries: [
        { kind: 'MapEntry', key: { kind: 'String', value: 'k' }, value: { kind: 'Int', value: 1 } },
        { kind: 'MapEntry', key: { kind: 'Ident', name: 'other' }, value: { value: 2 } },
      ],
    });
    expect(value('Method.GET')).toMatchObject({ kind: 'Ref', name: { parts: [{ name: 'Method' }, { name: 'GET' }] } });
    expect(value('[]')).toMatchObject({ kind: 'List', items: [] });
    expect(value('{}')).toMatchObject({ kind: 'Map', entries: [] });
  });
});

describe('protocols', () => {
  it('parses operations of each kind and an order', () => {
    const p = decl('protocol Sql {\n /// Runs a query.\n call query(Query) -> Rows\n send log(Line)\n notify changed(Notice)\n call ping\n call reset() -> {}\n order (query | log)* ping+ reset?\n}');
    expect(p).toMatchObject({
      kind: 'ProtocolDecl',
      name: { name: 'Sql' },
      ops: [
        { kind: 'Operation', opKind: 'call', name: { name: 'query' }, input: { kind: 'NamedType' }, output: { kind: 'NamedType' }, doc: 'Runs a query.' },
        { opKind: 'send', name: { name: 'log' }, input: { kind: 'NamedType' } },
        { opKind: 'notify', name: { name: 'changed' } },
        { opKind: 'call', name: { name: 'ping' } },
        { opKind: 'call', name: { name: 'reset' }, output: { kind: 'RecordType' } },
      ],
      order: {
        kind: 'OrderSeq',
        items: [
          { kind: 'OrderRepeat', op: '*', expr: { kind: 'OrderAlt', options: [{ kind: 'OrderOp', name: { name: 'query' } }, { kind: 'OrderOp' }] } },
          { kind: 'OrderRepeat', op: '+', expr: { kind: 'OrderOp', name: { name: 'ping' } } },
          { kind: 'OrderRepeat', op: '?' },
        ],
      },
    });
    const ops = (p as unknown as { ops: object[] }).ops;
    expect(ops[1]).not.toHaveProperty('output');
    expect(ops[3]).not.toHaveProperty('input');
    expect(ops[4]).not.toHaveProperty('input');
  });

  it('parses a single-operation order as the operation itself', () => {
    expect(decl('protocol P { call a order a }')).toMatchObject({ order: { kind: 'OrderOp', name: { name: 'a' } } });
  });
});

describe('components', () => {
  it('parses every member', () => {
    expect(member('image busybox')).toMatchObject({ kind: 'ImageMember', image: { parts: [{ name: 'busybox' }] } });
    expect(member('memory 256MiB')).toMatchObject({ kind: 'MemoryMember', value: { kind: 'Size', bytes: 268435456 } });
    expect(member('vcpus 2')).toMatchObject({ kind: 'VcpusMember', value: { kind: 'Int', value: 2 } });
    expect(member('label secret')).toMatchObject({ kind: 'LabelMember', label: { name: 'secret' } });
    expect(member('declassifies secret -> internal')).toMatchObject({ kind: 'DeclassifyMember', from: { name: 'secret' }, to: { name: 'internal' } });
    expect(member('/// Max.\nparam max_conn: int(1..1000) = 100')).toMatchObject({
      kind: 'ParamDecl',
      name: { name: 'max_conn' },
      type: { kind: 'PrimitiveType' },
      default: { kind: 'Int', value: 100 },
      sensitive: false,
      doc: 'Max.',
    });
    expect(member('param t: string sensitive')).toMatchObject({ kind: 'ParamDecl', sensitive: true });
    expect(member('param t: string')).not.toHaveProperty('default');
    expect(member('provide sql: Sql')).toMatchObject({ kind: 'PortDecl', direction: 'provide', name: { name: 'sql' }, protocol: { parts: [{ name: 'Sql' }] }, optional: false });
    expect(member('provide sql: Sql')).not.toHaveProperty('expose');
    expect(member('require log: std.log.Logs optional')).toMatchObject({ direction: 'require', optional: true, protocol: { parts: [{}, {}, { name: 'Logs' }] } });
    expect(member('expose http: Http on tcp 8080')).toMatchObject({
      kind: 'PortDecl',
      direction: 'provide',
      expose: { kind: 'ExposeSpec', transport: 'tcp', port: { kind: 'Int', value: 8080 } },
    });
    expect(member('single')).toEqual({ kind: 'InstancesMember', mode: 'single', span: expect.any(Object) });
    expect(member('replicas 3')).toMatchObject({ kind: 'InstancesMember', mode: 'replicas', count: { value: 3 } });
    expect(member('per session')).toEqual({ kind: 'InstancesMember', mode: 'per_session', span: expect.any(Object) });
    expect(member('per session pool 2 max 64')).toMatchObject({ mode: 'per_session', pool: { value: 2 }, max: { value: 64 } });
    expect(member('per session max 16 pool 2')).toMatchObject({ pool: { value: 2 }, max: { value: 16 } });
    expect(member('restart always')).toEqual({ kind: 'RestartMember', policy: 'always', span: expect.any(Object) });
    expect(member('restart never')).toMatchObject({ policy: 'never' });
    expect(member('restart on-failure')).toMatchObject({ policy: 'on_failure' });
    expect(member('restart on-failure max 5')).toMatchObject({ policy: 'on_failure', maxRetries: { value: 5 } });
  });

  it('parses program blocks', () => {
    expect(member('program { script "db.sh"\n exec ["/bin/httpd", "-f"]; file "/etc/a" = "x", file "/srv/i" from "www/i"\n env { A = "1", B = "2" } }')).toMatchObject({
      kind: 'ProgramMember',
      entries: [
        { kind: 'ScriptEntry', path: { value: 'db.sh' } },
        { kind: 'ExecEntry', argv: { kind: 'List', items: [{ value: '/bin/httpd' }, { value: '-f' }] } },
        { kind: 'FileEntry', guestPath: { value: '/etc/a' }, source: { kind: 'inline', text: { value: 'x' } } },
        { kind: 'FileEntry', guestPath: { value: '/srv/i' }, source: { kind: 'workspace', path: { value: 'www/i' } } },
        { kind: 'EnvEntry', vars: { kind: 'Map', entries: [{ key: { name: 'A' } }, { key: { name: 'B' } }] } },
      ],
    });
  });

  it('separates members by newlines, `;` or `,`', () => {
    const c = decl<ComponentDecl>('component C { memory 1MiB; vcpus 1, label x\n single }');
    expect(c.members.map((m) => m.kind)).toEqual(['MemoryMember', 'VcpusMember', 'LabelMember', 'InstancesMember']);
  });

  it('lets contextual keywords be names', () => {
    const c = decl<ComponentDecl>('component memory { provide log: rate  require from: path.to.session }');
    expect(c.name.name).toBe('memory');
    expect(c.members).toMatchObject([
      { name: { name: 'log' }, protocol: { parts: [{ name: 'rate' }] } },
      { name: { name: 'from' }, protocol: { parts: [{ name: 'path' }, { name: 'to' }, { name: 'session' }] } },
    ]);
  });
});

describe('systems', () => {
  it('parses instances with settings and parameter overrides', () => {
    expect(sysMember('/// The db.\ndb = Db')).toMatchObject({ kind: 'InstanceDecl', name: { name: 'db' }, component: { parts: [{ name: 'Db' }] }, settings: [], doc: 'The db.' });
    expect(sysMember('app = shop.App { replicas 2; max_conn = 50, label internal\n memory 64MiB vcpus 1 restart never single per session max 4 replicas = 3 }')).toMatchObject({
      settings: [
        { kind: 'InstancesMember', mode: 'replicas' },
        { kind: 'ParamOverride', name: { name: 'max_conn' }, value: { value: 50 } },
        { kind: 'LabelMember' },
        { kind: 'MemoryMember' },
        { kind: 'VcpusMember' },
        { kind: 'RestartMember' },
        { kind: 'InstancesMember', mode: 'single' },
        { kind: 'InstancesMember', mode: 'per_session' },
        { kind: 'ParamOverride', name: { name: 'replicas' } },
      ],
    });
  });

  it('parses connections with every attribute', () => {
    expect(sysMember('connect web.app -> app.api { rate 500/s burst 50; max_message 64KiB; timeout 2s; allow request, other; max_inflight 8 }')).toMatchObject({
      kind: 'ConnectDecl',
      from: { kind: 'PortRef', instance: { name: 'web' }, port: { name: 'app' } },
      to: { kind: 'PortRef', instance: { name: 'app' }, port: { name: 'api' } },
      attrs: [
        { kind: 'RateAttr', rate: { kind: 'Rate', perSecond: 500 }, burst: { value: 50 } },
        { kind: 'MaxMessageAttr', size: { bytes: 65536 } },
        { kind: 'TimeoutAttr', duration: { ms: 2000 } },
        { kind: 'AllowAttr', ops: [{ name: 'request' }, { name: 'other' }] },
        { kind: 'MaxInflightAttr', count: { value: 8 } },
      ],
    });
    expect(sysMember('connect a.b -> c.d')).toMatchObject({ attrs: [] });
    expect((sysMember('connect a.b -> c.d { rate 5/s }') as { attrs: object[] }).attrs[0]).not.toHaveProperty('burst');
  });

  it('parses exposures and exports', () => {
    expect(sysMember('expose web.http on tcp 8080')).toMatchObject({
      kind: 'ExposeDecl',
      port: { instance: { name: 'web' }, port: { name: 'http' } },
      spec: { kind: 'ExposeSpec', transport: 'tcp', port: { value: 8080 } },
    });
    expect(sysMember('export api = web.http')).toMatchObject({ kind: 'ExportDecl', name: { name: 'api' }, port: { instance: { name: 'web' } } });
  });

  it('parses every policy rule', () => {
    expect(sysMember('policy { db only from app, admin\n db only through app; no path web -> db, no flow secret -> web exposed only [web.http, a.b] exposed only [] budget memory 1GiB budget vcpus 4 }')).toMatchObject({
      kind: 'PolicyBlock',
      rules: [
        { kind: 'OnlyRule', target: { name: 'db' }, mode: 'from', sources: [{ name: 'app' }, { name: 'admin' }] },
        { kind: 'OnlyRule', mode: 'through', sources: [{ name: 'app' }] },
        { kind: 'NoPathRule', from: { name: 'web' }, to: { name: 'db' } },
        { kind: 'NoFlowRule', label: { name: 'secret' }, to: { name: 'web' } },
        { kind: 'ExposedOnlyRule', ports: [{ instance: { name: 'web' }, port: { name: 'http' } }, { instance: { name: 'a' } }] },
        { kind: 'ExposedOnlyRule', ports: [] },
        { kind: 'BudgetRule', resource: 'memory', value: { kind: 'Size' } },
        { kind: 'BudgetRule', resource: 'vcpus', value: { kind: 'Int', value: 4 } },
      ],
    });
  });

  it('reads instances named like policy keywords as `only` rules', () => {
    expect(sysMember('policy { no only from a\n exposed only through b\n budget only from c }')).toMatchObject({
      rules: [
        { kind: 'OnlyRule', target: { name: 'no' } },
        { kind: 'OnlyRule', target: { name: 'exposed' }, mode: 'through' },
        { kind: 'OnlyRule', target: { name: 'budget' } },
      ],
    });
  });
});

describe('images, labels, targets, deploy', () => {
  it('parses image and target properties', () => {
    expect(decl('image busybox { base "busybox-static"  kernel "debian-cloud"  modules ["virtio_console"] }')).toMatchObject({
      kind: 'ImageDecl',
      name: { name: 'busybox' },
      props: [
        { kind: 'Property', key: { name: 'base' }, value: { value: 'busybox-static' } },
        { key: { name: 'kernel' } },
        { key: { name: 'modules' }, value: { kind: 'List' } },
      ],
    });
    expect(decl('target local { backend kvm  memory 8GiB  vcpus 2  overcommit 4 }')).toMatchObject({
      kind: 'TargetDecl',
      props: [
        { key: { name: 'backend' }, value: { kind: 'Ref', name: { parts: [{ name: 'kvm' }] } } },
        { key: { name: 'memory' }, value: { kind: 'Size' } },
        { key: { name: 'vcpus' }, value: { kind: 'Int' } },
        { key: { name: 'overcommit' } },
      ],
    });
  });

  it('parses label chains', () => {
    expect(decl('labels { public < internal < secret; public < org_a\n solo }')).toMatchObject({
      kind: 'LabelsDecl',
      chains: [[{ name: 'public' }, { name: 'internal' }, { name: 'secret' }], [{ name: 'public' }, { name: 'org_a' }], [{ name: 'solo' }]],
    });
  });

  it('parses deploy with and without a target', () => {
    expect(decl('deploy Shop to local')).toMatchObject({ kind: 'DeployDecl', system: { parts: [{ name: 'Shop' }] }, target: { name: 'local' } });
    expect(decl('deploy shop.Shop')).not.toHaveProperty('target');
  });
});
