// The build scheduler in-process, where timing can be controlled exactly: a
// newer edit abandons a build at its next step, waiting requests get the
// newest snapshot, and a cancelled request stops waiting.

import { describe, expect, it, vi } from 'vitest';
import { CancellationTokenSource } from 'vscode-languageserver';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { Analyzer, RequestCancelled, type Snapshot } from '../src/analysis';
import { PathMapper } from '../src/paths';
import { Workspace } from '../src/workspace';
import { STDLIB } from './harness';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function setup(debounceMs = 5): { analyzer: Analyzer; workspace: Workspace; snapshots: Snapshot[] } {
  const disk: Record<string, string> = {};
  const workspace = new Workspace(new PathMapper('/nonexistent-root', STDLIB), {
    readFile: (p) => disk[p],
    readStdlib: (m) => {
      try {
        return readFileSync(join(STDLIB, `${m}.mcl`), 'utf8');
      } catch {
        return undefined;
      }
    },
  });
  const snapshots: Snapshot[] = [];
  const analyzer = new Analyzer(workspace, { debounceMs, emitPlan: false, log: () => undefined, onSnapshot: (s) => snapshots.push(s) });
  for (let i = 0; i < 5; i++) {
    const text = `component C${i} { memory 64MiB }\n`;
    workspace.setOpen(`m${i}.mcl`, TextDocument.create(`file:///m${i}.mcl`, 'mcl', 1, text));
  }
  return { analyzer, workspace, snapshots };
}

describe('analyzer', () => {
  it('abandons a build when a newer edit arrives, and serves the newer state', async () => {
    const { analyzer, workspace, snapshots } = setup();
    analyzer.invalidate();
    const first = analyzer.build();
    // The edit arrives while the first build is parsing (it yields between files).
    workspace.setOpen('m0.mcl', TextDocument.create('file:///m0.mcl', 'mcl', 2, 'component Renamed { memory 64MiB }\n'));
    analyzer.invalidate();
    await first;
    expect(analyzer.stats.abandoned).toBe(1);
    expect(snapshots).toHaveLength(0);
    const s = await analyzer.checked();
    expect(snapshots).toHaveLength(1);
    expect([...s.program.symbols.values()].some((x) => x.name === 'Renamed')).toBe(true);
    expect([...s.program.symbols.values()].some((x) => x.name === 'C0')).toBe(false);
    analyzer.dispose();
  });

  it('builds an edit made while nothing is scheduled on the next turn of the event loop (the first build after 2 ms), and a burst after the quiet period', async () => {
    // Only timers are faked: a build waiting for one never starts until they are advanced.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const turns = async (n: number) => {
      for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
    };
    try {
      const { analyzer, workspace, snapshots } = setup(50);
      // The first build waits a moment for the documents a client opens at once.
      analyzer.invalidate();
      await turns(50);
      expect(snapshots).toHaveLength(0);
      vi.advanceTimersByTime(2);
      await turns(50);
      expect(snapshots).toHaveLength(1);
      // An edit after it, with nothing scheduled, is built at once.
      workspace.setOpen('m4.mcl', TextDocument.create('file:///m4.mcl', 'mcl', 2, 'component Next { memory 64MiB }\n'));
      analyzer.invalidate();
      await turns(50);
      expect(snapshots).toHaveLength(2);
      // Two edits in a row: the second cancels the build the first scheduled and waits for the quiet period.
      workspace.setOpen('m3.mcl', TextDocument.create('file:///m3.mcl', 'mcl', 2, 'component Burst1 { memory 64MiB }\n'));
      analyzer.invalidate();
      workspace.setOpen('m3.mcl', TextDocument.create('file:///m3.mcl', 'mcl', 3, 'component Burst2 { memory 64MiB }\n'));
      analyzer.invalidate();
      await turns(50);
      expect(snapshots).toHaveLength(2);
      vi.advanceTimersByTime(50);
      await turns(50);
      expect(snapshots).toHaveLength(3);
      expect([...snapshots[2].program.symbols.values()].some((x) => x.name === 'Burst2')).toBe(true);
      analyzer.dispose();
    } finally {
      vi.useRealTimers();
    }
  });

  it('keeps the grouping into projects while the files and the modules they name are the same, and groups again when they change', () => {
    const { analyzer, workspace } = setup();
    const first = analyzer.projects();
    expect(first.map((p) => p.files)).toEqual([['m0.mcl'], ['m1.mcl'], ['m2.mcl'], ['m3.mcl'], ['m4.mcl']]);
    // An edit that names no other module keeps the grouping.
    workspace.setOpen('m0.mcl', TextDocument.create('file:///m0.mcl', 'mcl', 2, 'component C0 { memory 128MiB }\n'));
    expect(analyzer.projects()).toBe(first);
    // Naming another module joins the two files' projects.
    workspace.setOpen('m0.mcl', TextDocument.create('file:///m0.mcl', 'mcl', 3, 'import m1.{C1}\ncomponent C0 { memory 128MiB }\n'));
    expect(analyzer.projects().map((p) => p.files)).toEqual([['m0.mcl', 'm1.mcl'], ['m2.mcl'], ['m3.mcl'], ['m4.mcl']]);
    // And a new file is a project of its own.
    workspace.setOpen('m5.mcl', TextDocument.create('file:///m5.mcl', 'mcl', 1, 'component C5 { memory 64MiB }\n'));
    expect(analyzer.projects().map((p) => p.files)).toEqual([['m0.mcl', 'm1.mcl'], ['m2.mcl'], ['m3.mcl'], ['m4.mcl'], ['m5.mcl']]);
    analyzer.dispose();
  });

  it('answers a waiting request with a snapshot of the latest generation', async () => {
    const { analyzer, workspace } = setup(10_000);
    analyzer.invalidate();
    const waiting = analyzer.checked();
    workspace.setOpen('m1.mcl', TextDocument.create('file:///m1.mcl', 'mcl', 2, 'component Later { memory 64MiB }\n'));
    analyzer.invalidate();
    const later = analyzer.checked();
    const [a, b] = await Promise.all([waiting, later]);
    // Both waiters are served, the second with the edit included; the long debounce was skipped.
    expect([...b.program.symbols.values()].some((x) => x.name === 'Later')).toBe(true);
    expect(a.generation).toBeLessThanOrEqual(b.generation);
    analyzer.dispose();
  });

  it('stops waiting when the request is cancelled', async () => {
    const { analyzer } = setup(10_000);
    analyzer.invalidate();
    const source = new CancellationTokenSource();
    const waiting = analyzer.checked(source.token);
    source.cancel();
    await expect(waiting).rejects.toBeInstanceOf(RequestCancelled);
    analyzer.dispose();
  });

  it('keeps the syntax diagnostics of a file served from the parse cache', async () => {
    const { analyzer, workspace } = setup();
    workspace.setOpen('bad.mcl', TextDocument.create('file:///bad.mcl', 'mcl', 1, 'component Bad {\n  memory\n}\n'));
    analyzer.invalidate();
    const s1 = await analyzer.checked();
    const syntax1 = s1.result.diagnostics.filter((d) => d.file === 'bad.mcl' && d.code.startsWith('MCL01'));
    expect(syntax1.length).toBeGreaterThan(0);
    workspace.setOpen('m2.mcl', TextDocument.create('file:///m2.mcl', 'mcl', 2, 'component C2b { memory 64MiB }\n'));
    analyzer.invalidate();
    const s2 = await analyzer.checked();
    expect(s2.generation).toBeGreaterThan(s1.generation);
    expect(s2.result.diagnostics.filter((d) => d.file === 'bad.mcl' && d.code.startsWith('MCL01'))).toEqual(syntax1);
    analyzer.dispose();
  });
  it("warms each project's incremental compile after its first build, and publishes the result of the documents as they are", async () => {
    const { analyzer, workspace } = setup();
    // A document whose syntax error is at its very end: the warming compile reads it with one more
    // line break, and nothing of that may reach the published result.
    const text = 'component Tail { memory 64MiB }\ncomponent Open {\n  memory 64MiB';
    workspace.setOpen('tail.mcl', TextDocument.create('file:///tail.mcl', 'mcl', 1, text));
    analyzer.invalidate();
    const s = await analyzer.checked();
    // One warming per project with an open document (each file here is a project of its own).
    expect(analyzer.stats.warmUpMs.length).toBe(analyzer.stats.projectCompiles);
    expect(analyzer.stats.compileMs).toHaveLength(1);
    const project = analyzer.projectOf('tail.mcl')!;
    const full = analyzer.compileProject(project, { emitPlan: false }).result;
    const mine = s.result.diagnostics.filter((d) => d.file === 'tail.mcl');
    expect(mine.some((d) => d.code.startsWith('MCL01') && d.span.end === text.length)).toBe(true);
    expect(mine).toEqual(full.diagnostics.filter((d) => d.file === 'tail.mcl'));
    // The syntax tree published is the document's own parse, kept in the cache for the next build.
    expect(s.program.files.get('tail.mcl')).toBe(analyzer.cache.get('tail.mcl', text)?.file);
    expect(s.program.files.get('tail.mcl')!.span.end).toBe(text.length);
    // The next edit takes the warmed compile's results over and still equals a compile from scratch.
    const fixed = text + '\n}\n';
    workspace.setOpen('tail.mcl', TextDocument.create('file:///tail.mcl', 'mcl', 2, fixed));
    analyzer.invalidate();
    const s2 = await analyzer.checked();
    expect(analyzer.stats.warmUpMs.length).toBe(analyzer.stats.projectCompiles - 1);
    expect(s2.result.diagnostics.filter((d) => d.file === 'tail.mcl')).toEqual(analyzer.compileProject(analyzer.projectOf('tail.mcl')!, { emitPlan: false }).result.diagnostics.filter((d) => d.file === 'tail.mcl'));
    expect(s2.result.diagnostics.some((d) => d.file === 'tail.mcl' && d.severity === 'error')).toBe(false);
    analyzer.dispose();
  });

  it('warms the edit path with the saved text of a document opened with unsaved changes, and publishes the unsaved text', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcl-warm-'));
    try {
      const saved = 'component Saved { memory 64MiB }\n';
      const unsaved = 'component Saved { memory 64MiB\n';
      writeFileSync(join(dir, 'a.mcl'), saved);
      writeFileSync(join(dir, 'b.mcl'), saved);
      const workspace = new Workspace(new PathMapper(dir, STDLIB), {
        readFile: (p) => readFileSync(join(dir, p), 'utf8'),
        readStdlib: (m) => readFileSync(join(STDLIB, `${m}.mcl`), 'utf8'),
      });
      const analyzer = new Analyzer(workspace, { debounceMs: 5, emitPlan: false, log: () => undefined, onSnapshot: () => undefined });
      const warming: Record<string, string[]> = {};
      const compileProject = analyzer.compileProject.bind(analyzer);
      vi.spyOn(analyzer, 'compileProject').mockImplementation((project, options) => {
        if (options.replace) (warming[options.replace.file] ??= []).push(options.replace.text);
        return compileProject(project, options);
      });
      // a.mcl is open with unsaved changes (a syntax error); b.mcl is open as saved.
      workspace.setOpen('a.mcl', TextDocument.create(`file://${dir}/a.mcl`, 'mcl', 1, unsaved));
      workspace.setOpen('b.mcl', TextDocument.create(`file://${dir}/b.mcl`, 'mcl', 1, saved));
      analyzer.invalidate();
      const s = await analyzer.checked();
      // The way back to the saved text, an edit of it, then an edit of the unsaved text.
      expect(warming['a.mcl']).toEqual([saved, saved + '\n', unsaved + '\n']);
      expect(warming['b.mcl']).toEqual([saved + '\n']);
      // What is published is the unsaved text's, as a compile from scratch gives it.
      const mine = s.result.diagnostics.filter((d) => d.file === 'a.mcl');
      expect(mine.some((d) => d.severity === 'error' && d.code.startsWith('MCL01'))).toBe(true);
      expect(mine).toEqual(compileProject(analyzer.projectOf('a.mcl')!, { emitPlan: false }).result.diagnostics.filter((d) => d.file === 'a.mcl'));
      expect(s.program.files.get('a.mcl')).toBe(analyzer.cache.get('a.mcl', unsaved)?.file);
      analyzer.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
