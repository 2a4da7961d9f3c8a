// A host whose workspace holds several projects compiles one from its own
// folder (`CompilerHost.moduleRoot`): module and program paths resolve under the
// root and never leave it, files keep the host's names in the result, and the
// plan is the one a compile run from that folder makes.

import { describe, expect, test } from 'vitest';
import { join } from 'node:path';
import { canonicalJson, compile, moduleFile, modulePathOfFile, programFilePath, type CompileOptions } from '../src/index';
import { MemoryHost, readTree, REPO } from './helpers';

/** The same files under a folder of a larger workspace. */
function nested(files: Record<string, string>, root: string): Record<string, string> {
  return Object.fromEntries(Object.entries(files).map(([k, v]) => [`${root}/${k}`, v]));
}

class RootedHost extends MemoryHost {
  constructor(
    files: Record<string, string>,
    readonly moduleRoot: string,
  ) {
    super(files);
  }
}

describe('compiling a project from a folder of the workspace', () => {
  const cluster = readTree(join(REPO, 'examples', 'cluster'));
  const options: CompileOptions = { entries: ['cluster.mcl'], mclcVersion: 't', index: true };

  test('gives the plan of a compile run from that folder, with files named as the host names them', () => {
    const alone = compile(new MemoryHost(cluster), options);
    expect(alone.plan).toBeDefined();
    const workspace = { ...nested(cluster, 'examples/cluster'), 'other/cluster.mcl': 'system Unrelated {}\n' };
    const rooted = compile(new RootedHost(workspace, 'examples/cluster'), { ...options, entries: ['examples/cluster/cluster.mcl'] });
    expect(rooted.diagnostics).toEqual([]);
    expect(canonicalJson(rooted.plan!)).toEqual(canonicalJson(alone.plan!));
    // `import org` in cluster.mcl is the project's org.mcl, named by its workspace path everywhere.
    expect([...rooted.program.files.keys()].filter((f) => !f.startsWith('std:')).sort()).toEqual(['examples/cluster/cluster.mcl', 'examples/cluster/org.mcl']);
    expect([...rooted.program.symbols.keys()].some((id) => id.startsWith('examples/cluster/org.mcl#'))).toBe(true);
  });

  test('module and program paths never leave the root', () => {
    const files = {
      'p/main.mcl': 'import q.lib.*\ncomponent A {\n  program { script "../../q/run.sh" }\n}\nsystem S {\n  a = A\n}\n',
      'q/lib.mcl': 'type T = int\n',
      'q/run.sh': 'echo\n',
    };
    const r = compile(new RootedHost(files, 'p'), { entries: ['p/main.mcl'], mclcVersion: 't' });
    expect(r.diagnostics.map((d) => `${d.file} ${d.code}`)).toEqual(expect.arrayContaining(['p/main.mcl MCL0201']));
    expect(r.program.files.has('q/lib.mcl')).toBe(false);
  });

  test('the path functions the language server shares agree with the compile', () => {
    expect(moduleFile('a.b', 'proj')).toBe('proj/a/b.mcl');
    expect(moduleFile('std.http', 'proj')).toBe('std:http');
    expect(modulePathOfFile('proj/a/b.mcl', 'proj')).toBe('a.b');
    expect(modulePathOfFile('other/a.mcl', 'proj')).toBeUndefined();
    expect(programFilePath('proj/a/b.mcl', '../run.sh', 'proj')).toBe('proj/run.sh');
    expect(programFilePath('proj/a/b.mcl', '../../run.sh', 'proj')).toBeUndefined();
  });
});
