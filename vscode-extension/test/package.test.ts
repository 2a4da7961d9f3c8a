// Packages the extension with vsce and checks the .vsix: the manifest, the
// grammar, the bundled server and standard library, and that the server
// inside the package starts and answers `initialize`.

import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProtocolConnection, StreamMessageReader, StreamMessageWriter, type InitializeResult } from 'vscode-languageserver-protocol/node';
import * as yauzl from 'yauzl';
import { ensureServerBuilt, SERVER } from '../../lsp/test/harness';

const ext = join(dirname(fileURLToPath(import.meta.url)), '..');
const repo = join(ext, '..');
const work = mkdtempSync(join(tmpdir(), 'mcl-vsix-'));
const vsix = join(work, 'mcl-vscode.vsix');
let entries: Map<string, Buffer>;

function readZip(path: string): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    yauzl.open(path, { lazyEntries: true }, (err, zip) => {
      if (err) return reject(err);
      const out = new Map<string, Buffer>();
      zip.on('entry', (entry) => {
        if (entry.fileName.endsWith('/')) return zip.readEntry();
        zip.openReadStream(entry, (e, stream) => {
          if (e) return reject(e);
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            out.set(entry.fileName, Buffer.concat(chunks));
            zip.readEntry();
          });
        });
      });
      zip.on('end', () => resolve(out));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

beforeAll(async () => {
  // The bundles are brought up to date (as scripts/build.mjs builds them) so
  // the package holds the current sources.
  await ensureServerBuilt();
  mkdirSync(join(ext, 'dist'), { recursive: true });
  copyFileSync(SERVER, join(ext, 'dist', 'server.cjs'));
  await build({
    entryPoints: [join(ext, 'src', 'extension.ts')],
    outfile: join(ext, 'dist', 'extension.cjs'),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: ['vscode'],
    // As scripts/build.mjs builds it: with a linked source map, which the package leaves out.
    sourcemap: 'linked',
    logLevel: 'error',
    legalComments: 'none',
  });
  execFileSync(process.execPath, [join(ext, 'scripts', 'prepare.mjs')], { cwd: ext, stdio: 'pipe' });
  const vsce = join(repo, 'node_modules', '@vscode', 'vsce', 'vsce');
  execFileSync(process.execPath, [vsce, 'package', '--no-dependencies', '--allow-missing-repository', '--out', vsix], { cwd: ext, stdio: 'pipe' });
  entries = await readZip(vsix);
  console.log(`vsix: ${(statSync(vsix).size / 2 ** 20).toFixed(1)} MiB, ${entries.size} files`);
}, 120_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the .vsix package', () => {
  it('holds the manifest with the language, grammar, commands and settings', () => {
    const manifest = JSON.parse(entries.get('extension/package.json')!.toString('utf8'));
    expect(manifest.main).toBe('./dist/extension.cjs');
    expect(manifest.contributes.languages[0]).toMatchObject({ id: 'mcl', extensions: ['.mcl'] });
    expect(manifest.contributes.grammars[0]).toMatchObject({ language: 'mcl', scopeName: 'source.mcl' });
    expect(manifest.contributes.commands.map((c: { command: string }) => c.command)).toEqual(
      expect.arrayContaining(['mcl.showPlan', 'mcl.showGraph']),
    );
    expect(Object.keys(manifest.contributes.configuration.properties)).toEqual(expect.arrayContaining(['mcl.server.path', 'mcl.stdlibPath']));
    expect(entries.has('extension.vsixmanifest')).toBe(true);
  });

  it('holds the grammar, language configuration and snippets as valid JSON', () => {
    const grammar = JSON.parse(entries.get('extension/syntaxes/mcl.tmLanguage.json')!.toString('utf8'));
    expect(grammar.scopeName).toBe('source.mcl');
    JSON.parse(entries.get('extension/language-configuration.json')!.toString('utf8'));
    JSON.parse(entries.get('extension/snippets/mcl.json')!.toString('utf8'));
  });

  it('ships the bundles and the standard library but not the sources', () => {
    expect(entries.has('extension/dist/extension.cjs')).toBe(true);
    expect(entries.has('extension/dist/server.cjs')).toBe(true);
    expect(entries.has('extension/stdlib/prelude.mcl')).toBe(true);
    expect(entries.has('extension/stdlib/http.mcl')).toBe(true);
    expect([...entries.keys()].some((k) => k.endsWith('.ts'))).toBe(false);
    expect([...entries.keys()].some((k) => k.includes('node_modules/'))).toBe(false);
    expect([...entries.keys()].filter((k) => /(^|\/)\.gitignore$/.test(k))).toEqual([]);
  });

  it('ships no bundle that points at a source map it does not ship', () => {
    for (const [name, data] of entries) {
      if (!/\.(c|m)?js$/.test(name)) continue;
      const ref = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(data.toString('utf8'))?.[1];
      if (ref) expect(entries.has(join(dirname(name), ref)), `${name} -> ${ref}`).toBe(true);
    }
  });

  it('indents .mcl files with two spaces, as the formatter does', () => {
    const manifest = JSON.parse(entries.get('extension/package.json')!.toString('utf8'));
    expect(manifest.contributes.configurationDefaults['[mcl]']).toMatchObject({ 'editor.tabSize': 2, 'editor.insertSpaces': true });
  });

  it('starts the packaged server, which answers initialize and finds its standard library', async () => {
    const dir = join(work, 'unpacked');
    for (const [name, data] of entries) {
      if (!name.startsWith('extension/')) continue;
      const out = join(dir, name);
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, data);
    }
    const ws = join(work, 'ws');
    mkdirSync(ws);
    writeFileSync(join(ws, 'a.mcl'), 'import std.http.{Http}\ncomponent A { provide api: Http }\n');
    const env = { ...process.env };
    delete env.MCL_STDLIB;
    const proc = spawn(process.execPath, [join(dir, 'extension', 'dist', 'server.cjs'), '--stdio'], { cwd: ws, env });
    const conn = createProtocolConnection(new StreamMessageReader(proc.stdout), new StreamMessageWriter(proc.stdin));
    conn.onNotification('window/logMessage', () => undefined);
    conn.listen();
    try {
      const init = (await conn.sendRequest('initialize', {
        processId: process.pid,
        rootUri: pathToFileURL(ws).href,
        capabilities: {},
      })) as InitializeResult;
      expect(init.serverInfo?.name).toBe('mcl-lsp');
      expect(init.capabilities.hoverProvider).toBe(true);
      expect(init.capabilities.completionProvider).toBeDefined();
      await conn.sendNotification('initialized', {});
      // The import of std.http resolves only if the server found the stdlib shipped beside it.
      const hover = await conn.sendRequest('textDocument/hover', {
        textDocument: { uri: pathToFileURL(join(ws, 'a.mcl')).href },
        position: { line: 1, character: 29 },
      });
      expect(JSON.stringify(hover)).toContain('Http');
      await conn.sendRequest('shutdown');
      await conn.sendNotification('exit');
    } finally {
      conn.dispose();
      proc.kill();
    }
  });
});
