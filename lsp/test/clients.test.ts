// The server as clients other than VS Code see it, over real JSON-RPC on
// stdio: a client that declares no optional capabilities (as Neovim 0.7 and
// many others), multi-root workspaces, minimal formatting edits, the
// protocol's shutdown rules, size limits and the command line.

import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createProtocolConnection,
  PublishDiagnosticsNotification,
  StreamMessageReader,
  StreamMessageWriter,
  type CompletionList,
  type DocumentSymbol,
  type Hover,
  type PublishDiagnosticsParams,
  type SymbolInformation,
  type TextEdit,
} from 'vscode-languageserver-protocol/node';
import { ensureServerBuilt, SERVER, startClient, STDLIB, type Client } from './harness';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

beforeAll(async () => {
  await ensureServerBuilt();
}, 120_000);

/** A server started with raw `initialize` params, recording everything it sends. */
async function rawServer(params: Record<string, unknown>, cwd: string) {
  const proc = spawn(process.execPath, [SERVER, '--stdio'], { cwd, env: { ...process.env, MCL_STDLIB: STDLIB } });
  const conn = createProtocolConnection(new StreamMessageReader(proc.stdout), new StreamMessageWriter(proc.stdin));
  const published: PublishDiagnosticsParams[] = [];
  const shown: string[] = [];
  conn.onNotification(PublishDiagnosticsNotification.type, (p) => void published.push(p));
  conn.onNotification('window/logMessage', () => undefined);
  conn.onNotification('window/showMessage', (p: { message: string }) => void shown.push(p.message));
  conn.onRequest('window/showMessageRequest', () => null);
  conn.onRequest('client/registerCapability', () => null);
  conn.listen();
  const started = Date.now();
  await conn.sendRequest('initialize', { processId: process.pid, capabilities: {}, initializationOptions: { debounceMs: 10, stdlibPath: STDLIB }, ...params });
  const initMs = Date.now() - started;
  await conn.sendNotification('initialized', {});
  return {
    conn,
    proc,
    published,
    shown,
    initMs,
    async until<T>(what: () => T | undefined, timeoutMs = 15_000): Promise<T> {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const v = what();
        if (v !== undefined) return v;
        if (Date.now() > end) throw new Error('timed out');
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    kill: () => proc.kill('SIGKILL'),
  };
}

function tmpWorkspace(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'mcl-lsp-clients-'));
  dirs.push(root);
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(root, p, '..'), { recursive: true });
    writeFileSync(join(root, p), text);
  }
  return root;
}

const DUPLICATE = 'component A { memory 64MiB }\ncomponent A { memory 64MiB }\n';

describe('a client that declares no optional capabilities', () => {
  let client: Client;
  beforeAll(async () => {
    client = await startClient({ 'dup.mcl': DUPLICATE, 'a.mcl': 'component B {\n  memory 64MiB\n}\n' }, {}, { textDocument: {}, workspace: {} });
  }, 60_000);
  afterAll(() => client.close());

  it('gets no snippet completions, which it would insert literally', async () => {
    client.open('a.mcl', 'component B {\n  memory 64MiB\n}\n\n');
    const list = (await client.conn.sendRequest('textDocument/completion', {
      textDocument: { uri: client.uri('a.mcl') },
      position: { line: 3, character: 0 },
    })) as CompletionList;
    expect(list.items.length).toBeGreaterThan(0);
    expect(list.items.map((i) => i.label)).toContain('component');
    expect(list.items.filter((i) => i.insertTextFormat === 2 || /\$\{?\d/.test(i.insertText ?? ''))).toEqual([]);
  });

  it('gets hovers as plain text', async () => {
    await client.waitForDiagnostics('a.mcl');
    const h = (await client.conn.sendRequest('textDocument/hover', {
      textDocument: { uri: client.uri('a.mcl') },
      position: { line: 0, character: 11 },
    })) as Hover;
    const contents = h.contents as { kind: string; value: string };
    expect(contents.kind).toBe('plaintext');
    expect(contents.value).toMatch(/^component (a\.)?B\n/);
    expect(contents.value).not.toMatch(/```|\*component\*/);
  });

  it('gets a flat outline', async () => {
    const syms = (await client.conn.sendRequest('textDocument/documentSymbol', { textDocument: { uri: client.uri('a.mcl') } })) as SymbolInformation[];
    expect(syms[0]).toMatchObject({ name: 'B', location: { uri: client.uri('a.mcl') } });
    expect((syms[0] as unknown as DocumentSymbol).children).toBeUndefined();
  });

  it('gets related locations in the message, and no document version', async () => {
    const versions: (number | undefined)[] = [];
    client.conn.onNotification(PublishDiagnosticsNotification.type, (p) => {
      client.diagnostics.set(p.uri, p.diagnostics);
      versions.push(p.version);
    });
    client.open('dup.mcl', DUPLICATE);
    const end = Date.now() + 10_000;
    while (versions.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    const diags = client.diagnostics.get(client.uri('dup.mcl'))!;
    const dup = diags.find((d) => /A/.test(String(d.message)))!;
    expect(versions.length).toBeGreaterThan(0);
    expect(versions.every((v) => v === undefined)).toBe(true);
    expect(dup.relatedInformation).toBeUndefined();
    expect(String(dup.message)).toMatch(/\ndup\.mcl:\d+:\d+: /);
    expect(dup.tags).toBeUndefined();
  });
});

describe('a client that declares them', () => {
  let client: Client;
  beforeAll(async () => {
    client = await startClient({ 'dup.mcl': DUPLICATE });
  }, 60_000);
  afterAll(() => client.close());

  it('gets the related locations apart, and diagnostics name the document version they are for', async () => {
    const versions: (number | undefined)[] = [];
    client.conn.onNotification(PublishDiagnosticsNotification.type, (p) => {
      client.diagnostics.set(p.uri, p.diagnostics);
      if (p.uri === client.uri('dup.mcl')) versions.push(p.version);
    });
    client.open('dup.mcl', DUPLICATE);
    client.change('dup.mcl', DUPLICATE + '\n');
    await new Promise((r) => setTimeout(r, 10));
    const end = Date.now() + 10_000;
    while (!versions.includes(2) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(versions).toContain(2);
    const dup = client.diagnostics.get(client.uri('dup.mcl'))!.find((d) => d.relatedInformation)!;
    expect(dup.relatedInformation![0].location.uri).toBe(client.uri('dup.mcl'));
    expect(String(dup.message)).not.toMatch(/\ndup\.mcl:\d+/);
  });
});

describe('formatting', () => {
  const formatted = 'component A {\n  memory 64MiB\n  vcpus 1\n}\n\ncomponent B {\n  memory 64MiB\n}\n';
  let client: Client;
  beforeAll(async () => {
    client = await startClient({ 'f.mcl': formatted });
  }, 60_000);
  afterAll(() => client.close());

  function apply(text: string, edits: TextEdit[]): string {
    const lines = text.split('\n');
    const offset = (p: { line: number; character: number }) => lines.slice(0, p.line).reduce((n, l) => n + l.length + 1, 0) + p.character;
    for (const e of [...edits].sort((a, b) => offset(b.range.start) - offset(a.range.start))) {
      text = text.slice(0, offset(e.range.start)) + e.newText + text.slice(offset(e.range.end));
    }
    return text;
  }

  it('sends only the lines that change', async () => {
    const messy = formatted.replace('  vcpus 1', 'vcpus    1').replace('component B {\n  memory', 'component B {\n     memory');
    client.open('f.mcl', messy);
    await client.waitForDiagnostics('f.mcl');
    const edits = (await client.conn.sendRequest('textDocument/formatting', {
      textDocument: { uri: client.uri('f.mcl') },
      options: { tabSize: 2, insertSpaces: true },
    })) as TextEdit[];
    expect(edits).toHaveLength(2);
    expect(edits.map((e) => [e.range.start.line, e.range.end.line])).toEqual([
      [2, 3],
      [6, 7],
    ]);
    expect(apply(messy, edits)).toBe(formatted);
  });

  it('formats a range: only the edits that touch it', async () => {
    const messy = formatted.replace('  vcpus 1', 'vcpus    1').replace('component B {\n  memory', 'component B {\n     memory');
    client.change('f.mcl', messy);
    const edits = (await client.conn.sendRequest('textDocument/rangeFormatting', {
      textDocument: { uri: client.uri('f.mcl') },
      range: { start: { line: 6, character: 0 }, end: { line: 6, character: 5 } },
      options: { tabSize: 2, insertSpaces: true },
    })) as TextEdit[];
    expect(edits).toEqual([{ range: { start: { line: 6, character: 0 }, end: { line: 7, character: 0 } }, newText: '  memory 64MiB\n' }]);
  });

  it('formats comments between keywords, in env blocks and in empty lists (format-on-save used to do nothing)', async () => {
    const text = 'component C {\n  restart /* why */ always\n  program { env { A = "x" /* e */ } }\n}\nsystem S {\n  c = C\n  policy {\n    exposed only [ /* none */ ]\n  }\n}\n';
    client.open('c.mcl', text);
    await client.waitForDiagnostics('c.mcl');
    const edits = (await client.conn.sendRequest('textDocument/formatting', {
      textDocument: { uri: client.uri('c.mcl') },
      options: { tabSize: 2, insertSpaces: true },
    })) as TextEdit[] | null;
    expect(edits).not.toBeNull();
    const out = apply(text, edits!);
    for (const c of ['/* why */', '/* e */', '/* none */']) expect(out).toContain(c);
  });

  it('uses the layout of the project configuration, as mclc fmt and prettier do', async () => {
    writeFileSync(join(client.root, '.editorconfig'), 'root = true\n[*.mcl]\nindent_style = space\nindent_size = 4\n');
    try {
      client.open('g.mcl', 'component G { memory 64MiB; vcpus 1 }\n');
      await client.waitForDiagnostics('g.mcl');
      const edits = (await client.conn.sendRequest('textDocument/formatting', {
        textDocument: { uri: client.uri('g.mcl') },
        options: { tabSize: 2, insertSpaces: true },
      })) as TextEdit[];
      expect(apply('component G { memory 64MiB; vcpus 1 }\n', edits)).toBe('component G {\n    memory 64MiB\n    vcpus 1\n}\n');
    } finally {
      rmSync(join(client.root, '.editorconfig'));
    }
  });
});

describe('the protocol', () => {
  it('answers requests after shutdown with an error, and exits 0 on exit', async () => {
    const ws = tmpWorkspace({ 'a.mcl': 'component A { memory 64MiB }\n' });
    const s = await rawServer({ rootUri: pathToFileURL(ws).href }, ws);
    try {
      await s.conn.sendRequest('shutdown');
      const err = await s.conn
        .sendRequest('textDocument/documentSymbol', { textDocument: { uri: pathToFileURL(join(ws, 'a.mcl')).href } })
        .then(() => undefined, (e: { code: number }) => e);
      expect(err?.code).toBe(-32600);
      const exited = new Promise<number | null>((r) => s.proc.on('exit', (code) => r(code)));
      await s.conn.sendNotification('exit');
      expect(await exited).toBe(0);
    } finally {
      s.kill();
    }
  });

  it('prints its version and usage without a stack trace', () => {
    const v = spawnSync(process.execPath, [SERVER, '--version'], { encoding: 'utf8' });
    expect(v.status).toBe(0);
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(v.stderr).toBe('');
    const h = spawnSync(process.execPath, [SERVER, '--help'], { encoding: 'utf8' });
    expect(h.status).toBe(0);
    expect(h.stdout).toContain('--stdio');
  });
});

describe('workspaces', () => {
  it('analyses every folder of a multi-root workspace', async () => {
    const ws = tmpWorkspace({
      'one/a.mcl': 'component A { memory 64MiB }\n',
      'two/b.mcl': 'component B { memory 64 }\n',
      'elsewhere/c.mcl': 'component C { memory 64 }\n',
    });
    const s = await rawServer(
      {
        rootUri: pathToFileURL(join(ws, 'one')).href,
        workspaceFolders: [
          { uri: pathToFileURL(join(ws, 'one')).href, name: 'one' },
          { uri: pathToFileURL(join(ws, 'two')).href, name: 'two' },
        ],
      },
      ws,
    );
    try {
      // b.mcl is never opened: it is found by scanning the second folder.
      const b = pathToFileURL(join(ws, 'two', 'b.mcl')).href;
      const diags = await s.until(() => s.published.find((p) => p.uri === b && p.diagnostics.length > 0));
      expect(diags.diagnostics[0].message).toMatch(/unit|size|MiB/i);
      // A folder outside the workspace folders is not scanned.
      await new Promise((r) => setTimeout(r, 300));
      expect(s.published.some((p) => p.uri.includes('/elsewhere/'))).toBe(false);
    } finally {
      s.kill();
    }
  });

  it('does not scan the whole disk when the workspace is /, and says so', async () => {
    const s = await rawServer({ rootUri: 'file:///' }, tmpdir());
    try {
      expect(s.initMs).toBeLessThan(5_000);
      const msg = await s.until(() => s.shown.find((m) => /root of the file system/.test(m)));
      expect(msg).toContain('not scanned');
    } finally {
      s.kill();
    }
  });

  it('does not analyse a file over the size limit, says so on the file, and keeps replies small', async () => {
    const big = 'component Big { memory 64MiB }\n' + Array.from({ length: 80_000 }, (_, i) => `component C${i} { memory 64MiB }`).join('\n') + '\n';
    expect(big.length).toBeGreaterThan(2 * 1024 * 1024);
    const client = await startClient({});
    try {
      client.open('big.mcl', big);
      const diags = await client.waitForDiagnostics('big.mcl', (d) => d.length > 0, 30_000);
      expect(diags[0].message).toMatch(/over the 2 MiB the language server analyses/);
      const syms = (await client.conn.sendRequest('textDocument/documentSymbol', { textDocument: { uri: client.uri('big.mcl') } })) as DocumentSymbol[];
      expect(syms).toEqual([]);
      const edits = await client.conn.sendRequest('textDocument/formatting', { textDocument: { uri: client.uri('big.mcl') }, options: { tabSize: 2, insertSpaces: true } });
      expect(edits).toBeNull();
      const stats = (await client.conn.sendRequest('mcl/stats')) as { memory: { heapUsed: number } };
      expect(stats.memory.heapUsed).toBeLessThan(400 * 2 ** 20);
    } finally {
      await client.close();
    }
  }, 60_000);
});
