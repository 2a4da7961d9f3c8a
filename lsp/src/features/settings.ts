// Settings that change while the server runs. A client gives the server's
// settings in `initializationOptions` at start; after that every one of them
// takes effect without a restart when the client's configuration changes:
//
// - a client that answers `workspace/configuration` is asked for the `mcl`
//   section once it is ready and again on each `workspace/didChangeConfiguration`
//   (the notification then only says "something changed");
// - a client that does not is read from the notification's `settings` (its
//   `mcl` member, or the object itself).
//
// Both the VS Code shape (`{ stdlibPath, diagnostics: { debounceMs,
// planChecks } }`, from the `mcl.*` settings) and the flat shape of
// `initializationOptions` (`{ stdlibPath, debounceMs, emitPlan }`) are read.
// Values come from the client and are checked: a wrong type or an
// out-of-range number is ignored with a message, a standard library folder
// without `prelude.mcl` is refused with a warning, and a setting left out or
// empty falls back to its start value.

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DidChangeConfigurationNotification, type ClientCapabilities, type Connection } from 'vscode-languageserver';
import type { ServerContext, ServerOptions } from '../service';

/** The largest quiet period accepted, in ms: beyond it diagnostics would seem to never come. */
const MAX_DEBOUNCE_MS = 10_000;

export interface SettingsEnv {
  /** What the server started with (initializationOptions, and the standard library found then). */
  initial: Required<Pick<ServerOptions, 'debounceMs' | 'emitPlan'>> & { stdlibDir: string };
  /** Tells the user (a warning shown by the client). */
  warn(message: string): void;
}

/** Reads the server's settings from what a client sent; unknown members are ignored, bad values reported. */
export function readSettings(raw: unknown, warn: (m: string) => void): ServerOptions {
  const out: ServerOptions = {};
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return out;
  const r = raw as Record<string, unknown>;
  const section = r.mcl && typeof r.mcl === 'object' && !Array.isArray(r.mcl) ? (r.mcl as Record<string, unknown>) : r;
  const diagnostics = section.diagnostics && typeof section.diagnostics === 'object' ? (section.diagnostics as Record<string, unknown>) : {};
  const stdlibPath = section.stdlibPath;
  if (typeof stdlibPath === 'string') {
    if (stdlibPath !== '') out.stdlibPath = stdlibPath;
  } else if (stdlibPath !== undefined && stdlibPath !== null) warn('the setting stdlibPath must be a string; ignored');
  const debounce = diagnostics.debounceMs ?? section.debounceMs;
  if (typeof debounce === 'number' && Number.isFinite(debounce) && debounce >= 0 && debounce <= MAX_DEBOUNCE_MS) out.debounceMs = debounce;
  else if (debounce !== undefined && debounce !== null) warn(`the setting diagnostics.debounceMs must be a number of milliseconds from 0 to ${MAX_DEBOUNCE_MS}; ignored`);
  const plan = diagnostics.planChecks ?? section.emitPlan;
  if (typeof plan === 'boolean') out.emitPlan = plan;
  else if (plan !== undefined && plan !== null) warn('the setting diagnostics.planChecks must be true or false; ignored');
  return out;
}

/**
 * Applies settings to a running server: a setting not given returns to its
 * start value. Returns what changed, for the log.
 */
export function applySettings(c: ServerContext, settings: ServerOptions, env: SettingsEnv): string[] {
  const changed: string[] = [];
  const debounceMs = settings.debounceMs ?? env.initial.debounceMs;
  const emitPlan = settings.emitPlan ?? env.initial.emitPlan;
  const now = c.analyzer.settings;
  if (debounceMs !== now.debounceMs) changed.push(`debounceMs ${debounceMs}`);
  if (emitPlan !== now.emitPlan) changed.push(`emitPlan ${emitPlan}`);
  c.analyzer.configure({ debounceMs, emitPlan });

  let stdlib = env.initial.stdlibDir;
  if (settings.stdlibPath !== undefined) {
    if (existsSync(join(settings.stdlibPath, 'prelude.mcl'))) stdlib = settings.stdlibPath;
    else env.warn(`the standard library folder ${settings.stdlibPath} has no prelude.mcl; still using ${c.paths.stdlibDir}`);
  }
  // Returning to a start value that had no standard library keeps the one in use.
  if (resolve(stdlib) !== c.paths.stdlibDir && existsSync(join(stdlib, 'prelude.mcl'))) {
    c.paths.setStdlibDir(stdlib);
    changed.push(`stdlibPath ${c.paths.stdlibDir}`);
    // Standard library modules are read again from the new folder, and the
    // workspace scan skips it (it may lie inside the workspace).
    c.workspace.forgetStdlib();
    c.workspace.scan();
    c.analyzer.invalidate();
  }
  return changed;
}

/**
 * Follows the client's configuration for the life of the connection. Call
 * `start` once the client is ready (after `initialized`): it registers for
 * change notifications where the client wants that done dynamically, and
 * pulls the current settings where the client answers pulls.
 */
export function liveSettings(
  connection: Connection,
  c: ServerContext,
  caps: ClientCapabilities,
  env: SettingsEnv,
): { start(): void } {
  const pulls = caps.workspace?.configuration === true;
  const log = (changed: string[]) => {
    if (changed.length) connection.console.info(`mcl: settings changed: ${changed.join(', ')}`);
  };
  const pull = async (): Promise<void> => {
    try {
      const [section] = (await connection.workspace.getConfiguration([{ section: 'mcl' }])) as unknown[];
      log(applySettings(c, readSettings(section, env.warn), env));
    } catch (e) {
      connection.console.error(`mcl: the client did not give its settings: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  connection.onDidChangeConfiguration((p) => {
    if (pulls) void pull();
    else log(applySettings(c, readSettings(p.settings, env.warn), env));
  });
  return {
    start() {
      if (caps.workspace?.didChangeConfiguration?.dynamicRegistration === true) {
        void connection.client.register(DidChangeConfigurationNotification.type, { section: 'mcl' });
      }
      if (pulls) void pull();
    },
  };
}
