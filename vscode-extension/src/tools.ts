// The parts of the extension that do not need VS Code: finding the server and
// the CLI, running `mclc graph`, and the webview page. Kept apart so they can
// be tested with plain Node.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The language server bundle: the `mcl.server.path` setting when set, else the
 * copy shipped in the extension's `dist/` folder (built by scripts/build.mjs).
 */
export function resolveServerPath(setting: string | undefined, extensionPath: string): string {
  if (setting && setting.trim() !== '') return setting;
  return join(extensionPath, 'dist', 'server.cjs');
}

export interface CliCommand {
  command: string;
  args: string[];
}

/**
 * How to run `mclc`: the `mcl.cliPath` setting, then the CLI bundle of an mcl
 * checkout or the package installed in a workspace folder, then `mclc` on PATH.
 * A `.mjs`/`.js` path runs through the Node that runs the extension host.
 */
export function findCli(setting: string | undefined, workspaceFolders: string[], nodePath: string = process.execPath): CliCommand {
  const asCommand = (path: string): CliCommand => (/\.(c|m)?js$/.test(path) ? { command: nodePath, args: [path] } : { command: path, args: [] });
  if (setting && setting.trim() !== '') return asCommand(setting);
  for (const folder of workspaceFolders) {
    for (const candidate of [join(folder, 'cli', 'dist', 'mclc.mjs'), join(folder, 'node_modules', '.bin', 'mclc')]) {
      if (existsSync(candidate)) return asCommand(candidate);
    }
  }
  return { command: 'mclc', args: [] };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command without a shell and collects its output. */
export function run(cmd: CliCommand, args: string[], cwd: string, timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd.command, [...cmd.args, ...args], { cwd, env: { ...process.env, NO_COLOR: '1', MCL_IN_AUTOMATION: '1' } });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill(), timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: stderr + String(e.message) });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The composition graph of a file as SVG, or an error message a person can act on. */
export async function graphSvg(cli: CliCommand, file: string, cwd: string): Promise<{ svg?: string; error?: string }> {
  const r = await run(cli, ['graph', file, '--format', 'svg'], cwd);
  // Exit code 3 (a policy is violated) still comes with the graph, the violations drawn in red.
  if ((r.code === 0 || r.code === 3) && r.stdout.includes('<svg')) return { svg: r.stdout.slice(r.stdout.indexOf('<svg')) };
  if (r.code === null) {
    return { error: `Could not run the mcl CLI (${cli.command}): ${r.stderr.trim()}. Set "mcl.cliPath" to mclc.mjs or the mclc executable.` };
  }
  return { error: `mclc graph failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(0, 8).join('\n')}` };
}

/** A self-contained webview page showing an SVG; scripts are disabled by the content security policy. */
export function graphHtml(svg: string, title: string): string {
  const safeTitle = title.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
  // The SVG comes from our own CLI, but scripts inside it are still stripped.
  const clean = svg.replace(/<script[\s\S]*?<\/script>/gi, '');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:;">
<title>${safeTitle}</title>
<style>
  body { background: var(--vscode-editor-background); color: var(--vscode-editor-foreground); margin: 0; padding: 12px; }
  .graph { overflow: auto; }
  .graph svg { max-width: 100%; height: auto; background: white; border-radius: 4px; }
</style>
</head>
<body><div class="graph">${clean}</div></body>
</html>`;
}
