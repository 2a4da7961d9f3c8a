// Projects: files are compiled from the root their imports need, so a folder
// holding several projects side by side is checked as `mclc` checks each one.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Location } from 'vscode-languageserver-protocol';
import { groupProjects } from '../src/projects';
import { msg, positionAt, startClient, type Client } from './harness';
import { MAIN, TYPES } from './fixtures';

describe('groupProjects', () => {
  const refs: Record<string, string[]> = {
    'main.mcl': ['shop.types', 'shop'],
    'shop/types.mcl': [],
    'examples/a/app.mcl': ['lib'],
    'examples/a/lib.mcl': [],
    'examples/b/app.mcl': ['lib', 'missing.module'],
    'examples/b/lib.mcl': [],
    'examples/c/alone.mcl': [],
    'examples/c/other.mcl': [],
  };
  const projects = groupProjects(Object.keys(refs).sort(), (f) => refs[f]);

  it('roots each file where its imports resolve and groups it with what it imports', () => {
    expect(projects).toEqual([
      { root: 'examples/a', files: ['examples/a/app.mcl', 'examples/a/lib.mcl'] },
      { root: 'examples/b', files: ['examples/b/app.mcl', 'examples/b/lib.mcl'] },
      { root: 'examples/c', files: ['examples/c/alone.mcl'] },
      { root: 'examples/c', files: ['examples/c/other.mcl'] },
      { root: '', files: ['main.mcl', 'shop/types.mcl'] },
    ]);
  });
});

const APP = (name: string) => `import lib.{Store}
component App { require store: std.kv.Kv }
system ${name} {
  app = App
  store = Store
  connect app.store -> store.kv
}
deploy ${name}
`;
const LIB = `component Store { provide kv: std.kv.Kv }\n`;

let client: Client;
beforeAll(async () => {
  client = await startClient({
    'main.mcl': MAIN,
    'shop/types.mcl': TYPES,
    'examples/a/app.mcl': APP('A'),
    'examples/a/lib.mcl': LIB,
    'examples/b/app.mcl': APP('B'),
    'examples/b/lib.mcl': LIB,
  });
  client.open('examples/a/app.mcl', APP('A'));
  client.open('main.mcl', MAIN);
  await client.waitForDiagnostics('examples/a/app.mcl');
});
afterAll(() => client.close());

describe('projects in the server', () => {
  it('checks side-by-side projects without mixing their imports or deploys', async () => {
    const a = await client.waitForDiagnostics('examples/a/app.mcl');
    expect(a.map(msg)).toEqual([]);
    await client.waitForDiagnostics('main.mcl');
    expect(client.diagnostics.get(client.uri('main.mcl'))!.filter((d) => d.severity === 1).map(msg)).toEqual([]);
    // No file anywhere has an error.
    const errors = [...client.diagnostics.entries()].flatMap(([u, ds]) => ds.filter((d) => d.severity === 1).map((d) => `${u}: ${msg(d)}`));
    expect(errors).toEqual([]);
  });

  it('goes to the definition in the project the import resolves in', async () => {
    const text = APP('A');
    const locs = (await client.conn.sendRequest('textDocument/definition', {
      textDocument: { uri: client.uri('examples/a/app.mcl') },
      position: positionAt(text, text.indexOf('= Store') + 3),
    })) as Location[];
    expect(locs.map((l) => l.uri)).toEqual([client.uri('examples/a/lib.mcl')]);
  });

  it('finds references only within the project', async () => {
    const locs = (await client.conn.sendRequest('textDocument/references', {
      textDocument: { uri: client.uri('examples/b/lib.mcl') },
      position: positionAt(LIB, LIB.indexOf('Store') + 1),
      context: { includeDeclaration: true },
    })) as Location[];
    expect(new Set(locs.map((l) => l.uri))).toEqual(new Set([client.uri('examples/b/lib.mcl'), client.uri('examples/b/app.mcl')]));
  });

  it('completes module paths relative to the project root', async () => {
    const complete = async (text: string, offset: number): Promise<string[]> => {
      client.change('examples/a/app.mcl', text);
      const r = (await client.conn.sendRequest('textDocument/completion', {
        textDocument: { uri: client.uri('examples/a/app.mcl') },
        position: positionAt(text, offset),
      })) as { items: { label: string }[] };
      return r.items.map((i) => i.label);
    };
    const modules = await complete('import \n' + APP('A'), 7);
    expect(modules).toContain('lib');
    expect(modules).toContain('std');
    expect(modules).not.toContain('examples');
    const names = await complete(APP('A').replace('{Store}', '{Store, }'), 'import lib.{Store, '.length);
    expect(names).toContain('Store');
    client.change('examples/a/app.mcl', APP('A'));
  });

  it('offers to import an unknown name by its path from the project root', async () => {
    const text = APP('A').replace('import lib.{Store}\n', '');
    client.change('examples/a/app.mcl', text);
    const ds = await client.waitForDiagnostics('examples/a/app.mcl', (d) => d.some((x) => x.code === 'MCL0203'));
    const unknown = ds.find((d) => d.code === 'MCL0203')!;
    const actions = (await client.conn.sendRequest('textDocument/codeAction', {
      textDocument: { uri: client.uri('examples/a/app.mcl') },
      range: unknown.range,
      context: { diagnostics: [unknown] },
    })) as { title: string }[];
    expect(actions.map((a) => a.title)).toEqual(['Import `Store` from `lib`']);
    client.change('examples/a/app.mcl', APP('A'));
  });

  it('reports a project error against the right file after an edit', async () => {
    client.change('examples/a/app.mcl', APP('A').replace('import lib.{Store}', 'import lib.{Stor}'));
    const ds = await client.waitForDiagnostics('examples/a/app.mcl', (d) => d.some((x) => x.severity === 1));
    expect(ds.some((d) => /Stor/.test(msg(d)))).toBe(true);
    // The other project is untouched.
    expect((client.diagnostics.get(client.uri('examples/b/app.mcl')) ?? []).filter((d) => d.severity === 1)).toEqual([]);
  });
});
