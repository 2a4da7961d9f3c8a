// The bundled `mclc` is split so that `plan` and `validate` load neither the
// Graphviz renderer (WebAssembly, 1.6 MB of JavaScript) nor the backends: a
// module-load hook records every file the process loads, and the test reads
// which sources each came from (esbuild names them in `// path` comments).

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const bundle = join(repo, 'cli/dist/mclc.mjs');
const tmp = mkdtempSync(join(tmpdir(), 'mclc-split-'));
const hooks = join(tmp, 'hooks.mjs');
const register = join(tmp, 'register.mjs');

beforeAll(async () => {
  if (!existsSync(bundle)) await execa('node', [join(repo, 'scripts/build.mjs')], { cwd: repo });
  writeFileSync(hooks, `import { appendFileSync } from 'node:fs';\nexport async function load(url, context, next) {\n  if (url.startsWith('file:')) appendFileSync(process.env.MCL_TEST_LOAD_LOG, url + '\\n');\n  return next(url, context);\n}\n`);
  writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
}, 120_000);
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let runs = 0;
/** The sources bundled into the files one `mclc` run loaded. */
async function loadedSources(args: string[]): Promise<{ code: number | undefined; sources: string[] }> {
  const log = join(tmp, `loads-${runs++}.txt`);
  writeFileSync(log, '');
  const r = await execa('node', ['--import', pathToFileURL(register).href, bundle, ...args], {
    cwd: join(repo, 'examples', 'webstack'),
    reject: false,
    timeout: 60_000,
    env: { NO_COLOR: '1', CI: '1', MCL_TEST_LOAD_LOG: log },
  });
  const files = readFileSync(log, 'utf8').split('\n').filter((u) => u.startsWith('file:') && u.includes('/cli/dist/'));
  const sources = files.flatMap((u) => [...readFileSync(fileURLToPath(u), 'utf8').matchAll(/^\/\/ ((?:node_modules|backends|cli|compiler|language|plan)\/\S+)$/gm)].map((m) => m[1]));
  return { code: r.exitCode, sources };
}

describe('the split CLI bundle', () => {
  it('plan and validate load neither the graph renderer nor any backend', async () => {
    for (const args of [['validate', 'webstack.mcl'], ['plan', 'webstack.mcl', '--out', join(tmp, 'w.plan')]]) {
      const { code, sources } = await loadedSources(args);
      expect(code).toBe(0);
      expect(sources.some((s) => s.startsWith('compiler/src/'))).toBe(true);
      expect(sources.filter((s) => s.includes('@viz-js/viz') || s.startsWith('backends/kvm/') || s.startsWith('backends/xen/'))).toEqual([]);
    }
  }, 120_000);

  it('graph --format svg loads the renderer from its chunk', async () => {
    const { code, sources } = await loadedSources(['graph', 'webstack.mcl', '--format', 'svg']);
    expect(code).toBe(0);
    expect(sources.some((s) => s.includes('@viz-js/viz'))).toBe(true);
  }, 120_000);
});
