// The `mclc` command line: option parsing, help with examples, and the
// top-level handler that turns every failure into a message and an exit code.
// Expected failures (CliError) print their message and hint; anything else is
// a bug in mclc and prints "internal error" with a bug-report hint.

import { MIGRATION_MODES } from '@mcl/plan/backend';
import { Command, CommanderError, Option } from 'commander';
import type { Context } from './context';
import { CliError, EXIT_CODE_HELP, ExitCode, type ExitCodeValue } from './exit';
import { MCLC_VERSION } from './version';

const collect = (value: string, previous: string[] = []) => [...previous, value];

function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}\n`;
}

/** Options shared by commands that compile sources. */
function sourceOptions(cmd: Command): Command {
  return cmd
    .option('--root <dir>', 'workspace root that module paths resolve from (default: the common directory of the paths)')
    .option('--target <name>', 'target to plan for, overriding the `deploy` statement')
    .option('--system <name>', 'root system, overriding the `deploy` statement')
    .option('--max-diagnostics <n>', 'show at most N diagnostics (and at most 10 per line); 0 shows them all', '200');
}

function lifecycleOptions(cmd: Command): Command {
  return cmd
    .option('--root <dir>', 'workspace whose deployment to act on (default: the nearest directory with a .mcl/ at or above the current one)')
    .option('--state <file>', 'state file (default: <root>/.mcl/state.json)')
    .option('--lock-timeout <duration>', 'wait this long for a state lock held by another process (e.g. 30s)', '0s')
    .option('--namespace <name>', 'kubevirt: the namespace of the deployment (default: the plan\'s, or the one the workspace\'s state records)')
    .option('--context <name>', 'kubevirt: the kubeconfig context (default: the plan\'s, the state\'s, or the current one)')
    .option('--host <url>', 'the deployment is on this host, reached over ssh (ssh://[user@]host[:port][/workspace], as the target says)');
}

export async function run(argv: string[], ctx: Context): Promise<number> {
  let result: ExitCodeValue = ExitCode.Ok;
  const set = (p: Promise<ExitCodeValue>) => p.then((c) => void (result = c));

  const program = new Command('mclc')
    .description('Compile, check, plan and deploy MacroComponents: components isolated in copy-on-write micro-VMs.')
    .version(MCLC_VERSION, '-V, --version', 'print the version of mclc')
    .helpOption('-h, --help', 'show help for a command')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ writeOut: (s) => ctx.out(s), writeErr: (s) => ctx.err(s), outputError: (s, write) => write(s) })
    .addHelpText(
      'after',
      examples(
        'mclc validate examples/webstack',
        'mclc plan examples/webstack --out shop.plan',
        'mclc apply shop.plan --root examples/webstack',
        'mclc status --root examples/webstack',
      ) +
        '\nEnvironment:\n  MCL_STDLIB         directory of the standard library (default: the stdlib/ shipped with mclc)\n' +
        '  MCL_IN_AUTOMATION  or CI: no colours and no prompts\n  NO_COLOR           no colours\n\n' +
        EXIT_CODE_HELP +
        '\n',
    );

  sourceOptions(
    program
      .command('validate')
      .summary('check sources: syntax, types, wiring and policies')
      .description('Check .mcl sources (files, or directories searched for .mcl files) without building a plan.')
      .argument('[paths...]', '.mcl files or directories (default: the current directory)'),
  )
    .option('--json', 'print diagnostics as JSON (same as --format json)')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json', 'sarif']).default('text'))
    .option('-w, --watch', 'check again whenever a source changes, re-checking only what the change affects, until interrupted (with --json: one document per line)')
    .addHelpText(
      'after',
      examples('mclc validate', 'mclc validate examples/webstack --json', 'mclc validate . --format sarif > mcl.sarif', 'mclc validate --watch') +
        '\nExit codes: 0 valid, 1 invalid source, 3 only policy violations (MCL05xx); with --watch, those of the last check when interrupted.\n',
    )
    .action(async (paths: string[], o) => set(import('./commands/compile-commands').then((m) => m.validateCommand(ctx, paths, o))));

  sourceOptions(
    program
      .command('plan')
      .summary('compute the deployment plan and what it would change')
      .description('Compile the sources into a deployment plan, compare it with the deployed state and print the changes.')
      .argument('[paths...]', '.mcl files or directories (default: the current directory)'),
  )
    .option('--out <file>', 'write the plan (canonical JSON) to this file for `mclc apply`')
    .option('--sign-key <file>', 'sign the plan file with this Ed25519 private key (PEM); the signature goes to <out>.sig')
    .option('--state <file>', 'deployment state to compare with (default: <root>/.mcl/state.json when it exists)')
    .option('--json', 'print a machine-readable document instead of the human summary')
    .option('--detailed-exitcode', 'exit with 2 when the plan has changes, 0 when it has none')
    .option('--exclude <id>', 'leave this instance out of the plan (repeatable)', collect, [])
    .addHelpText(
      'after',
      examples(
        'mclc plan examples/webstack',
        'mclc plan examples/webstack --out shop.plan',
        'mclc plan . --detailed-exitcode --json > changes.json',
        'mclc plan . --target big-host --exclude web',
      ) + '\nExit codes: 0 success (no changes with --detailed-exitcode), 1 invalid source, 2 changes pending (--detailed-exitcode), 3 policy violated.\n',
    )
    .action(async (paths: string[], o) => set(import('./commands/compile-commands').then((m) => m.planCommand(ctx, paths, o))));

  program
    .command('show')
    .summary('print a saved plan')
    .description('Validate a plan file and print its instances, channels, exposures, checks and resources.')
    .argument('<planfile>', 'a file written by `mclc plan --out`')
    .option('--json', 'print the plan as canonical JSON (sensitive parameters redacted)')
    .option('--flask', 'print the FLASK policy module the Xen backend generates for the plan (spec/xen.md)')
    .addHelpText('after', examples('mclc show shop.plan', 'mclc show shop.plan --json | jq .instances', 'mclc show shop.plan --flask > mcl.te'))
    .action(async (file: string, o) => set(import('./commands/compile-commands').then((m) => m.showCommand(ctx, file, o))));

  program
    .command('render')
    .summary('print the Kubernetes objects of a kubevirt plan')
    .description(
      'Verify a plan for a kubevirt target as `apply` does and print its Kubernetes objects: a VirtualMachine per clone, the broker ' +
        'Deployment, a Service per exposure, the NetworkPolicies and the ResourceQuota (spec/kubevirt.md). The same plan gives the same bytes.',
    )
    .argument('<planfile>', 'a file written by `mclc plan --out` for a target with `backend kubevirt`')
    .addOption(new Option('--format <format>', 'k8s: the objects; containerdisk: a container image build context per guest image (needs --out)').choices(['k8s', 'containerdisk']).default('k8s'))
    .option('--out <dir>', 'write one file per object into this directory (removing files an earlier render wrote there) instead of printing them')
    .option('--json', 'JSON instead of YAML: a v1 List on standard output, one object per file with --out')
    .option('--verify-key <file>', 'refuse the plan unless <planfile>.sig is its signature by this Ed25519 key (PEM; default: $MCL_PLAN_VERIFY_KEY)')
    .addHelpText('after', examples('mclc render shop.plan | kubectl diff -f -', 'mclc render shop.plan --out k8s/ && kubectl apply --server-side -f k8s/', 'mclc render shop.plan --json | jq \'.items[].metadata.name\'', 'mclc render shop.plan --format containerdisk --out images/'))
    .action(async (file: string, o) => set(import('./commands/render').then((m) => m.renderCommand(ctx, file, o))));

  sourceOptions(
    program
      .command('graph')
      .summary('draw the wiring graph (DOT or SVG)')
      .description('Draw instances, channels and exposures as a Graphviz graph; SVG is rendered locally.')
      .argument('[paths...]', '.mcl files or directories (default: the current directory)'),
  )
    .addOption(new Option('--format <format>', 'output format').choices(['dot', 'svg']).default('dot'))
    .option('--out <file>', 'write to this file instead of standard output')
    .option('--exclude <id>', 'leave this instance out (repeatable)', collect, [])
    .addHelpText('after', examples('mclc graph examples/webstack | dot -Tpng > shop.png', 'mclc graph examples/webstack --format svg --out shop.svg'))
    .action(async (paths: string[], o) => set(import('./commands/compile-commands').then((m) => m.graphCommand(ctx, paths, o))));

  program
    .command('fmt')
    .summary('format .mcl files')
    .description('Format .mcl files in place, or with --check list the files that are not formatted.')
    .argument('[paths...]', '.mcl files or directories (default: the current directory)')
    .option('--check', 'do not write; list unformatted files and exit with 4 if there are any')
    .addHelpText(
      'after',
      examples('mclc fmt', 'mclc fmt --check stdlib examples') +
        '\nThe layout follows .prettierrc and .editorconfig as Prettier reads them (see spec/editor.md).\n' +
        'Exit codes: 0 formatted, 1 a file does not parse, 4 unformatted (--check), 70 the formatter failed (a bug).\n',
    )
    .action(async (paths: string[], o) => set(import('./commands/fmt').then((m) => m.fmtCommand(ctx, paths, o))));

  program
    .command('lsp')
    .summary('run the language server (for editors)')
    .description(
      'Run the mcl language server, talking the Language Server Protocol over standard input and output. ' +
        'Editors start it; see spec/editor.md for Neovim, Helix, Zed and VS Code.',
    )
    .option('--stdio', 'talk over standard input and output (the default; accepted because editors pass it)')
    .addHelpText('after', examples('mclc lsp') + '\nExit codes: 0 after shutdown and exit, 1 the client went away without shutdown.\n')
    .action(async () => set(import('./commands/lsp').then((m) => m.lspCommand(ctx))));

  lifecycleOptions(
    program
      .command('apply')
      .summary('bring the deployment to a saved plan')
      .description('Apply a plan written by `mclc plan --out`: build images, fork instances, wire channels. Only changed instances are replaced.')
      .argument('<planfile>', 'a file written by `mclc plan --out`'),
  )
    .option('--json', 'print progress as JSON lines (one event per line) on standard output')
    .option('--replace <id>', 'replace this instance even if it did not change (repeatable)', collect, [])
    .option('--ready-timeout <duration>', 'how long to wait for a guest to become ready', '60s')
    .option('--verify-key <file>', 'refuse the plan unless <planfile>.sig is its signature by this Ed25519 key (PEM; default: $MCL_PLAN_VERIFY_KEY)')
    .option('--metrics [addr]', 'serve Prometheus metrics on this loopback HOST:PORT (default 127.0.0.1:9464; `off` stops it); kept until changed')
    .option('-v, --verbose', 'print debug events')
    .addHelpText(
      'after',
      examples('mclc plan examples/webstack --out shop.plan && mclc apply shop.plan --root examples/webstack', 'mclc apply shop.plan --json > events.jsonl') +
        '\nExit codes: 0 applied, 1 invalid, edited or unsigned plan file, 3 the plan\'s policy checks do not hold, 5 backend failure, 6 stale plan or state locked.\n',
    )
    .action(async (file: string, o) => set(import('./commands/lifecycle').then((m) => m.applyCommand(ctx, file, o))));

  lifecycleOptions(program.command('destroy').summary('stop every instance of the deployment').description('Stop every instance, remove runtime files and record an empty state.'))
    .option('--json', 'print progress as JSON lines on standard output')
    .option('-v, --verbose', 'print debug events')
    .addHelpText('after', examples('mclc destroy', 'mclc destroy --root examples/webstack'))
    .action(async (o) => set(import('./commands/lifecycle').then((m) => m.destroyCommand(ctx, o))));

  lifecycleOptions(
    program
      .command('checkpoint')
      .summary('save the running deployment (or some instances) to a directory')
      .description(
        'Pause every clone and the broker at one cut, save each clone\'s device state and the guest memory that differs from its template, ' +
          'the broker\'s per-channel state and the plan, and let everything run again. The format is spec/checkpoint.md.',
      )
      .argument('[instances...]', 'only these instances (default: the whole deployment, broker included)'),
  )
    .option('--out <dir>', 'the directory to write (new or empty; default: .mcl/checkpoints/<time>)')
    .option('--json', 'print progress as JSON lines and the result as the last line')
    .option('-v, --verbose', 'print debug events')
    .addHelpText(
      'after',
      examples('mclc checkpoint --out ckpt-1', 'mclc checkpoint app db --out ckpt-2 --json') +
        '\nExit codes: 0 saved, 1 an unknown instance or an --out that is not a new or empty directory, 5 backend failure (nothing runs, a clone is down), 6 state locked.\n',
    )
    .action(async (ids: string[], o) => set(import('./commands/checkpoint').then((m) => m.checkpointCommand(ctx, ids, o))));

  lifecycleOptions(
    program
      .command('restore')
      .summary('bring a deployment back from a checkpoint')
      .description(
        'Check a checkpoint whole (every file against its digest, the plan, the templates), then start its clones where they were and the broker ' +
          'with its state. A checkpoint that is damaged, incomplete, of another plan or of another template build is refused and nothing is changed.',
      )
      .argument('<dir>', 'a directory written by `mclc checkpoint`'),
  )
    .option('--ready-timeout <duration>', 'how long to wait for a restored guest to answer', '60s')
    .option('--json', 'print progress as JSON lines and the result as the last line')
    .option('-v, --verbose', 'print debug events')
    .addHelpText(
      'after',
      examples('mclc restore ckpt-1', 'mclc destroy && mclc restore .mcl/checkpoints/2026-01-01T00-00-00-000Z') +
        '\nExit codes: 0 restored, 5 a damaged or incomplete checkpoint or a backend failure, 6 another plan is deployed, the template was rebuilt, or the state is locked.\n',
    )
    .action(async (dir: string, o) => set(import('./commands/checkpoint').then((m) => m.restoreCommand(ctx, dir, o))));

  program
    .command('migrate')
    .summary('move a running clone to another host of its deployment')
    .description(
      'Move one running clone of a deployment placed on several targets to another of them, with QEMU\'s live migration (KVM): the template is ' +
        'built there first when needed, the clone\'s traffic is held at its broker for the switch, no message is lost or delivered twice, and a ' +
        'failure leaves it running where it was. Its channels stay with its home host\'s broker (spec/hosts.md, "Live migration").',
    )
    .argument('<clone>', 'INSTANCE or INSTANCE.CLONE, e.g. `db` or `app.1` (the clone may be left out when the instance has one)')
    .option('--to <target>', 'the target to move it to (one of the plan\'s targets)')
    .option('--plan <file>', 'the plan that was applied: its targets, their hosts and where each instance is placed')
    .addOption(new Option('--mode <mode>', 'precopy: QEMU\'s live migration of all guest RAM; pages: only the pages that differ from the template, most of them while it runs (the destination must have the very same template boot)').choices(MIGRATION_MODES).default('precopy'))
    .option('--json', 'print progress as JSON lines and the result as the last line')
    .option('--root <dir>', 'workspace of the target without `host`, if any (default: the nearest directory with a .mcl/ at or above the current one)')
    .option('--state <file>', 'state file of the target without `host` (default: <root>/.mcl/state.json)')
    .option('--lock-timeout <duration>', 'wait this long for a state lock held by another process (e.g. 30s)', '0s')
    .option('-v, --verbose', 'print debug events')
    .addHelpText(
      'after',
      examples('mclc migrate db --to node2 --plan shop.plan', 'mclc migrate app.1 --to node1 --plan shop.plan --mode pages', 'mclc migrate db --to node2 --plan shop.plan --json > move.jsonl') +
        '\nEvery check is made before any host is changed: the clone, the target, the deployed plan on both hosts, the room left on the destination.\n' +
        'Exit codes: 0 moved, 1 an unknown instance, clone or target, a clone already there or moved, no room, 5 backend failure (the clone runs on\n' +
        'where it was; a backend that cannot move clones), 6 the hosts run another plan, or a state is locked.\n',
    )
    .action(async (ref: string, o) => set(import('./commands/migrate').then((m) => m.migrateCommand(ctx, ref, o))));

  lifecycleOptions(program.command('status').summary('show the running deployment').description('Instances, clones, health, memory, CPU, channel counters and violations.'))
    .option('--json', 'print the report as JSON')
    .addHelpText('after', examples('mclc status', 'mclc status --json | jq ".channels[] | {id, violations}"'))
    .action(async (o) => set(import('./commands/lifecycle').then((m) => m.statusCommand(ctx, o))));

  lifecycleOptions(
    program
      .command('logs')
      .summary("print an instance's console and program output")
      .description("Print the guest console and the program output of an instance's clones.")
      .argument('<instance>', 'instance id, e.g. `app` or `shop.app`'),
  )
    .option('-f, --follow', 'keep printing new output until interrupted')
    .option('--tail <n>', 'print only the last N lines first')
    .option('--clone <n>', 'only this clone of a replicated instance')
    .option('--json', 'print one JSON object per line')
    .addHelpText(
      'after',
      examples('mclc logs app', 'mclc logs web --clone 1 --follow') +
        '\nWhere the output is kept (KVM backend):\n' +
        '  Each clone\'s console (kernel, guest agent and the program\'s stdout and stderr) is written to\n' +
        '  <run dir>/clones/<instance>.<clone>/console.log, beside the state (.mcl/run, or a private directory\n' +
        '  for a long workspace path). A file is rotated by renames past 4 MiB (console.log.1, .2, .3, the\n' +
        '  oldest dropped), and every restart starts a new one, so a clone keeps at most 16 MiB; a guest is\n' +
        '  read at 32 KiB/s at most and a faster one is made to wait. Set MCL_CONSOLE_LOG_BYTES,\n' +
        '  MCL_CONSOLE_LOG_FILES and MCL_CONSOLE_RATE in the environment of the first apply to change this.\n' +
        '  The logs go when the deployment is destroyed.\n',
    )
    .action(async (id: string, o) => set(import('./commands/lifecycle').then((m) => m.logsCommand(ctx, id, o))));

  const audit = lifecycleOptions(
    program
      .command('audit')
      .summary('print the audit trail (or check it: `mclc audit verify`)')
      .description(
        'Print the deployment\'s audit trail: every apply, destroy, fork, exit, restart and stop, who asked for it, and every frame the broker denied. ' +
          'Each line carries the hash of the line before it; `mclc audit verify` checks the chain.',
      ),
  )
    .option('-f, --follow', 'keep printing records as they are appended until interrupted')
    .option('--tail <n>', 'print only the last N records first')
    .option('--json', 'print the records as written, one JSON object per line')
    .addHelpText(
      'after',
      examples('mclc audit', 'mclc audit --follow --json', 'mclc audit verify') +
        '\nThe trail is kept beside the state (.mcl/state.audit.jsonl, rotated past 8 MiB, 8 files) and outlives destroy.\n',
    )
    .action(async (o) => set(import('./commands/operations').then((m) => m.auditCommand(ctx, o))));
  lifecycleOptions(audit.command('verify').summary("check the audit trail's hash chain").description('Check that no line of the audit trail was edited, removed or cut off, and say where the chain breaks.'))
    .option('--json', 'print the result as JSON')
    .addHelpText('after', examples('mclc audit verify', 'mclc audit verify --json') + '\nExit codes: 0 the chain holds, 1 it is broken (every break is listed), 5 the trail cannot be read.\n')
    // Options written before `verify` (`mclc audit --json verify`) belong to `audit`: both are read.
    .action(async (_o, cmd: Command) => set(import('./commands/operations').then((m) => m.auditVerifyCommand(ctx, cmd.optsWithGlobals()))));

  lifecycleOptions(
    program
      .command('usage')
      .summary('what each organisation used (the accounting ledger)')
      .description(
        'Sum the accounting ledger the supervisor keeps from the host side: CPU seconds, memory byte-seconds (PSS), peak memory, uptime, forks, restarts, ' +
          'denials and frames and bytes relayed, per label (organisation), instance, system or clone, with totals.',
      ),
  )
    .option('--since <time>', 'only what was used since this time (ISO 8601) or this long ago (e.g. 1h)')
    .addOption(new Option('--by <grouping>', 'rows per').choices(['label', 'instance', 'system', 'clone']).default('label'))
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'csv']).default('table'))
    .option('--json', 'same as --format json')
    .addHelpText(
      'after',
      examples('mclc usage', 'mclc usage --by instance --since 1h', 'mclc usage --format csv > usage.csv') +
        '\nThe ledger is kept beside the state (.mcl/state.usage.jsonl), appended every 10 s (MCL_LEDGER_INTERVAL_MS) and outlives destroy.\n',
    )
    .action(async (o) => set(import('./commands/operations').then((m) => m.usageCommand(ctx, o))));

  program
    .command('doctor')
    .summary('check what this host can run')
    .description('Check QEMU, the accelerator (KVM or TCG), the guest kernel, busybox and shared memory.')
    .option('--json', 'print the checks as JSON')
    .option('--host <url>', 'check this host over ssh instead (ssh://[user@]host[:port]): its own mclc runs the checks')
    .addHelpText('after', examples('mclc doctor', 'mclc doctor --host ssh://mcl@node1.example'))
    .action(async (o) => set(import('./commands/lifecycle').then((m) => m.doctorCommand(ctx, o))));

  // The supervisor a deployment runs in, started by `apply` as a detached process; not for people.
  // Its backend is named by the program-level `--backend` (before the command), the default one without it.
  program.addOption(new Option('--backend <name>', 'backend of the supervisor').hideHelp());
  program
    .command('__supervise', { hidden: true })
    .argument('<dir>')
    .action(async (dir: string) => set(import('./commands/lifecycle').then((m) => m.superviseCommand(dir, program.opts().backend as string | undefined))));

  // The host side of a command run over ssh (src/remote.ts); not for people.
  program
    .command('__host', { hidden: true })
    .requiredOption('--client-version <version>')
    .requiredOption('--root <dir>')
    .argument('<command>')
    .argument('[options]')
    .action(async (command: string, options: string | undefined, o) => set(import('./commands/host').then((m) => m.hostCommand(ctx, o, command, options))));

  // The broker of a kubevirt deployment, run by its rendered Deployment `mcl-broker`; not for people.
  program
    .command('__kube-broker', { hidden: true })
    .requiredOption('--plan <file>', 'the plan the Secret mcl-plan mounts')
    .requiredOption('--guests <domain>', "the guests' headless Service, mcl-guests.<namespace>.svc")
    .option('--key <file>', "the deployment's key the Secret mcl-broker-key mounts (default /etc/mcl-key/key)")
    .option('--status-port <port>', 'the readiness port')
    .option('--listen <address>', 'address of the exposures and the status port (default 0.0.0.0)')
    .option('--guest-map <list>', 'VM:PORT=HOST:PORT,...: dial these guest ports elsewhere')
    .option('--port-map <list>', 'HOSTPORT=PORT,...: listen for these exposures on other ports')
    .action(async (o) => set(import('./commands/kube-broker').then((m) => m.kubeBrokerCommand(ctx, o))));

  try {
    await program.parseAsync(argv, { from: 'user' });
    return result;
  } catch (e) {
    return handleError(e, ctx);
  }
}

export function handleError(e: unknown, ctx: Context): number {
  const s = ctx.errStyle;
  if (e instanceof CommanderError) {
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return ExitCode.Ok;
    // Commander has already printed the message; add a pointer to the help.
    ctx.err(`Run \`mclc --help\` for usage.\n`);
    return ExitCode.Invalid;
  }
  if (e instanceof CliError) {
    ctx.err(`${s.red(s.bold('error'))}: ${e.message}\n`);
    if (e.hint) ctx.err(`  ${s.green('hint')}: ${e.hint}\n`);
    return e.code;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  ctx.err(
    `${s.red(s.bold('internal error'))}: ${err.message}\n` +
      `  This is a bug in mclc ${MCLC_VERSION}. Please report it with the command you ran and the output below.\n` +
      (err.stack ? s.dim(err.stack.split('\n').slice(1, 8).join('\n')) + '\n' : ''),
  );
  return ExitCode.Internal;
}
