// Context-aware completion: keywords by block, types, components, the ports
// of an instance after `instance.`, and protocol operations after `allow`.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CompletionItem, CompletionList } from 'vscode-languageserver-protocol';
import { parseFixture, positionAt, startClient, type Client } from './harness';
import { SHOP_FILES } from './fixtures';

let client: Client;
beforeAll(async () => {
  client = await startClient(SHOP_FILES);
});
afterAll(() => client.close());

/** Opens (or replaces) `edit.mcl` with the fixture and asks for completion at each cursor. */
async function complete(marked: string, cursor = 0): Promise<string[]> {
  const f = parseFixture(marked);
  client.open('edit.mcl', f.text);
  const r = (await client.conn.sendRequest('textDocument/completion', {
    textDocument: { uri: client.uri('edit.mcl') },
    position: positionAt(f.text, f.cursors[cursor]),
  })) as CompletionList | CompletionItem[] | null;
  const items = Array.isArray(r) ? r : (r?.items ?? []);
  return items.map((i) => i.label);
}

const HEADER = `import std.http.{Http}
import std.kv.{Kv}
import shop.types.{Orders, Order}
component A { require orders: Orders  require store: Kv  param level: int = 1 }
component B { provide orders: Orders  provide api: Http }
component S { provide kv: Kv }
`;

describe('completion', () => {
  it('offers top-level keywords at the start of a declaration', async () => {
    const labels = await complete(`${HEADER}\n$0`);
    expect(labels).toEqual(expect.arrayContaining(['component', 'system', 'protocol', 'type', 'import', 'deploy']));
    expect(labels).not.toContain('memory');
  });

  it('offers component member keywords inside a component', async () => {
    const labels = await complete(`${HEADER}\ncomponent C {\n  mem$0\n}`);
    expect(labels).toEqual(expect.arrayContaining(['memory', 'provide', 'require', 'param', 'restart', 'program']));
    expect(labels).not.toContain('connect');
  });

  it("offers the compiler's target properties and backends, kubevirt's included", async () => {
    expect(await complete(`target t {\n  $0\n}`)).toEqual(expect.arrayContaining(['backend', 'memory', 'namespace', 'context', 'registry']));
    expect((await complete(`target t {\n  backend $0\n}`)).sort()).toEqual(['kubevirt', 'kvm', 'xen']);
  });

  it('offers the ports of an instance after `instance.`', async () => {
    const labels = await complete(`${HEADER}\nsystem Sys {\n  a = A\n  b = B\n  connect a.$0\n}`);
    expect(labels.sort()).toEqual(['orders', 'store']);
  });

  it('offers provided ports on the right of `->`', async () => {
    const labels = await complete(`${HEADER}\nsystem Sys {\n  a = A\n  b = B\n  connect a.orders -> b.$0\n}`);
    expect(labels.sort()).toEqual(['api', 'orders']);
  });

  it('offers protocol operations after `allow`', async () => {
    const labels = await complete(`${HEADER}\nsystem Sys {\n  a = A\n  b = B\n  connect a.orders -> b.orders { allow $0 }\n}`);
    expect(labels.sort()).toEqual(['cancel', 'place']);
  });

  it('offers the remaining operations after `allow a,`', async () => {
    const labels = await complete(`${HEADER}\nsystem Sys {\n  a = A\n  b = B\n  connect a.orders -> b.orders { allow place, $0 }\n}`);
    expect(labels).toEqual(['cancel']);
  });

  it('offers instances in policy rules and provided ports in `exposed only`', async () => {
    const sys = `${HEADER}\nsystem Sys {\n  a = A\n  b = B\n  s = S\n  connect a.orders -> b.orders\n  connect a.store -> s.kv\n  policy {\n    RULE\n  }\n}`;
    expect((await complete(sys.replace('RULE', 's only from a, $0'))).sort()).toEqual(['a', 'b', 's']);
    expect((await complete(sys.replace('RULE', 'exposed only [b.$0]'))).sort()).toEqual(['api', 'orders']);
    expect((await complete(sys.replace('RULE', 'no path a -> $0'))).sort()).toEqual(['a', 'b', 'outside', 's']);
  });

  it('offers the instances of a nested system after `farm.` in a policy rule, also deeper down', async () => {
    const src = `${HEADER}\nsystem Inner {\n  s = S\n}\nsystem Farm {\n  b = B\n  inner = Inner\n}\nsystem Top {\n  farm = Farm\n  policy {\n    RULE\n  }\n}`;
    expect((await complete(src.replace('RULE', 'no path farm.$0'))).sort()).toEqual(['b', 'inner']);
    expect((await complete(src.replace('RULE', 'farm.b only from farm.inner.$0'))).sort()).toEqual(['s']);
    expect((await complete(src.replace('RULE', 'no flow secret -> farm.$0'))).sort()).toEqual(['b', 'inner']);
  });

  it('offers a parameterised system\'s parameters, and no component settings, inside its instance\'s braces', async () => {
    const src = `${HEADER}\nsystem T {\n  param n: int = 1\n  param tier: label\n  a = A { replicas n }\n}\nsystem Top {\n  t = T { $0 }\n}`;
    expect((await complete(src)).sort()).toEqual(['n', 'tier']);
  });

  it('offers components after `name =` in a system', async () => {
    const labels = await complete(`${HEADER}\nsystem Sys {\n  a = $0\n}`);
    expect(labels).toEqual(expect.arrayContaining(['A', 'B', 'S']));
    expect(labels).not.toContain('Orders');
  });

  it('offers protocols after `provide name:`', async () => {
    const labels = await complete(`${HEADER}\ncomponent C {\n  provide p: $0\n}`);
    expect(labels).toEqual(expect.arrayContaining(['Http', 'Kv', 'Orders']));
    expect(labels).not.toContain('Order');
  });

  it('offers types and primitives after `param name:`', async () => {
    const labels = await complete(`${HEADER}\ncomponent C {\n  param p: $0\n}`);
    expect(labels).toEqual(expect.arrayContaining(['Order', 'int', 'int64', 'string', 'list']));
    expect(labels).not.toContain('Orders');
  });

  it('offers `declassifies` and `query` among the attributes of a channel', async () => {
    const labels = await complete(`${HEADER}\nsystem Sys {\n  a = A\n  b = B\n  connect a.orders -> b.orders {\n    $0\n  }\n}`);
    expect(labels).toEqual(expect.arrayContaining(['rate', 'allow', 'declassifies', 'query']));
  });

  it("offers a channel's attributes and the connection limits inside an exposure's braces", async () => {
    const labels = await complete(`${HEADER}\nsystem Sys {\n  b = B\n  expose b.api on tcp 8080 { $0 }\n}`);
    expect(labels).toEqual(expect.arrayContaining(['rate', 'max_inflight', 'max_connections', 'connection_rate', 'bandwidth', 'idle_timeout']));
    expect(labels).not.toContain('connect');
  });

  it("offers an exposure's attributes and `label` inside an egress's braces, and `egress` among system members", async () => {
    const labels = await complete(`${HEADER}\nsystem Sys {\n  b = B\n  egress out: b.api -> "tcp://h.example.com:25" { $0 }\n}`);
    expect(labels).toEqual(expect.arrayContaining(['rate', 'max_connections', 'connection_rate', 'bandwidth', 'idle_timeout', 'label']));
    expect(labels).not.toContain('connect');
    expect(await complete(`${HEADER}\nsystem Sys {\n  b = B\n  $0\n}`)).toContain('egress');
  });

  it('offers parameters and settings inside instance braces', async () => {
    const labels = await complete(`${HEADER}\nsystem Sys {\n  a = A { $0 }\n}`);
    expect(labels).toEqual(expect.arrayContaining(['level', 'replicas', 'restart']));
  });

  it('offers standard library modules after `import std.`', async () => {
    const labels = await complete(`import std.$0`);
    expect(labels).toEqual(expect.arrayContaining(['http', 'kv', 'sql', 'log', 'blob']));
  });

  it('offers nothing inside comments and unfinished strings, and reads past finished ones', async () => {
    expect(await complete(`${HEADER}\n// a comment $0`)).toEqual([]);
    expect(await complete(`${HEADER}\n/* a comment $0 */`)).toEqual([]);
    expect(await complete(`${HEADER}\ncomponent C {\n  program { script "guest/$0" }\n}`)).toEqual([]);
    const afterComment = await complete(`${HEADER}\ncomponent C {\n  /* note */ mem$0\n}`);
    expect(afterComment).toEqual(expect.arrayContaining(['memory', 'provide']));
    const afterString = await complete(`${HEADER}\ncomponent C {\n  program { script "run.sh" }\n  mem$0\n}`);
    expect(afterString).toEqual(expect.arrayContaining(['memory', 'provide']));
  });

  it('reads `restart on-failure` and a statement continued on the next line as the lexer does', async () => {
    expect(await complete(`${HEADER}\ncomponent C {\n  restart $0\n}`)).toEqual(expect.arrayContaining(['always', 'on-failure', 'never']));
    const labels = await complete(`${HEADER}\nsystem Sys {\n  a = A\n  b = B\n  connect a.orders ->\n    b.$0\n}`);
    expect(labels.sort()).toEqual(['api', 'orders']);
  });
});
