// The VS Code extension: starts the bundled language server over stdio and
// adds the plan and composition-graph commands.

import * as vscode from 'vscode';
import { LanguageClient, TransportKind, type LanguageClientOptions, type ServerOptions } from 'vscode-languageclient/node';
import { findCli, graphHtml, graphSvg, resolveServerPath } from './tools';

let client: LanguageClient | undefined;

interface PlanResponse {
  plan?: string;
  errors: { message: string; file: string; line: number }[];
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  await startClient(context);

  context.subscriptions.push(
    // The server's "Show plan" code lens passes the document's URI; the palette passes nothing (the active editor's document).
    vscode.commands.registerCommand('mcl.showPlan', (uri?: string) => showPlan(uri)),
    vscode.commands.registerCommand('mcl.showGraph', () => showGraph(context)),
    vscode.commands.registerCommand('mcl.restartServer', async () => {
      await client?.stop();
      await startClient(context);
    }),
  );
}

export async function deactivate(): Promise<void> {
  await client?.stop();
  client = undefined;
}

async function startClient(context: vscode.ExtensionContext): Promise<void> {
  const config = vscode.workspace.getConfiguration('mcl');
  const module = resolveServerPath(config.get<string>('server.path'), context.extensionPath);
  const serverOptions: ServerOptions = {
    run: { module, transport: TransportKind.stdio },
    debug: { module, transport: TransportKind.stdio, options: { execArgv: ['--nolazy', '--inspect=6009'] } },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: 'file', language: 'mcl' }],
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher('**/*.mcl') },
    initializationOptions: {
      stdlibPath: config.get<string>('stdlibPath') || undefined,
      debounceMs: config.get<number>('diagnostics.debounceMs'),
      emitPlan: config.get<boolean>('diagnostics.planChecks'),
    },
  };
  client = new LanguageClient('mcl', 'MacroComponents', serverOptions, clientOptions);
  await client.start();
}

function activeMclDocument(): vscode.TextDocument | undefined {
  const doc = vscode.window.activeTextEditor?.document;
  if (!doc || doc.languageId !== 'mcl') {
    void vscode.window.showWarningMessage('Open an .mcl file first.');
    return undefined;
  }
  return doc;
}

async function showPlan(uri?: string): Promise<void> {
  const target = typeof uri === 'string' ? uri : activeMclDocument()?.uri.toString();
  if (!target || !client) return;
  const r = await client.sendRequest<PlanResponse>('mcl/plan', { uri: target });
  if (!r.plan) {
    const first = r.errors[0];
    const where = first ? ` First: ${first.file}:${first.line}: ${first.message}` : '';
    void vscode.window.showErrorMessage(`No plan: the sources have ${r.errors.length} error(s).${where}`);
    return;
  }
  const planDoc = await vscode.workspace.openTextDocument({ language: 'json', content: r.plan });
  await vscode.window.showTextDocument(planDoc, { viewColumn: vscode.ViewColumn.Beside, preview: true });
}

async function showGraph(context: vscode.ExtensionContext): Promise<void> {
  const doc = activeMclDocument();
  if (!doc) return;
  if (doc.isDirty) await doc.save();
  const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
  const cwd = vscode.workspace.getWorkspaceFolder(doc.uri)?.uri.fsPath ?? folders[0] ?? context.extensionPath;
  const cli = findCli(vscode.workspace.getConfiguration('mcl').get<string>('cliPath'), folders);
  const r = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Window, title: 'mcl: drawing the composition graph' },
    () => graphSvg(cli, doc.uri.fsPath, cwd),
  );
  if (!r.svg) {
    void vscode.window.showErrorMessage(r.error ?? 'mclc graph produced no SVG.');
    return;
  }
  const title = `Graph: ${vscode.workspace.asRelativePath(doc.uri)}`;
  const panel = vscode.window.createWebviewPanel('mclGraph', title, vscode.ViewColumn.Beside, { enableScripts: false });
  panel.webview.html = graphHtml(r.svg, title);
}
