// `mclc doctor` for the Xen backend: whether this host is a Xen dom0 that can
// run deployments, and which way it makes instances (fork or restore, with
// the reason), hypervisor version, HVM/HAP, VT-x, memory sharing, XSM,
// xenstored and xenconsoled, dom0 privileges and the tools. On a host that is
// not a dom0 it says so in one warning (the KVM backend may run there).

import { accessSync, constants, existsSync, readdirSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { DoctorCheck, DoctorReport } from '@mcl/plan/backend';
import { HELPER, nativeProgram } from './native';
import { XlToolstack, type HostCaps } from './toolstack';
import { forkResetPool, hasFlask, instancePath } from './xen-runtime';

const PRIVCMD = '/dev/xen/privcmd';

/** Whether a process with this name runs (by /proc/<pid>/comm). */
function running(name: string): boolean {
  try {
    return readdirSync('/proc').some((p) => {
      if (!/^\d+$/.test(p)) return false;
      try {
        return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === name;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, cmd)));
}

/** The checks on a host whose capabilities are known (pure, unit-tested). */
export function capabilityChecks(caps: HostCaps, env: NodeJS.ProcessEnv = process.env): DoctorCheck[] {
  const checks: DoctorCheck[] = [{ id: 'xen-hypervisor', status: 'ok', summary: `Xen ${caps.version}` }];
  checks.push(
    caps.hvm && caps.hap
      ? { id: 'xen-hvm', status: 'ok', summary: `HVM with hardware-assisted paging (${caps.vmx ? 'Intel VT-x' : caps.svm ? 'AMD SVM' : 'unknown vendor'})` }
      : { id: 'xen-hvm', status: 'fail', summary: `PVH guests need HVM and HAP: hvm=${caps.hvm} hap=${caps.hap}`, hint: 'enable VT-x/AMD-V and EPT/NPT in the firmware' },
  );
  const p = (() => {
    try {
      return instancePath(caps, env.MCL_XEN_INSTANCES);
    } catch (e) {
      return { path: 'restore' as const, why: (e as Error).message };
    }
  })();
  checks.push(
    p.path === 'fork'
      ? { id: 'xen-instances', status: 'ok', summary: 'instances are forked (xc_memshr_fork): memory sharing on Intel VT-x with HAP' }
      : {
          id: 'xen-instances',
          status: 'warn',
          summary: `instances are restored from the parked template's image, not forked: ${p.why}`,
          hint: 'forks need Xen built with CONFIG_MEM_SHARING on an Intel VT-x host (spec/xen.md, "Runbook")',
        },
  );
  if (p.path === 'fork') {
    const pool = forkResetPool(p.path, env);
    checks.push(
      pool.on
        ? { id: 'xen-fork-reset', status: 'ok', summary: `per-session pool: ${pool.why}` }
        : { id: 'xen-fork-reset', status: 'warn', summary: `per-session forks are destroyed after their session, not reset for the next (${pool.why})`, hint: 'unset MCL_XEN_FORK_RESET to keep a pool of forks reset with xc_memshr_fork_reset' },
    );
  }
  checks.push(
    caps.xsm === 'enforcing'
      ? { id: 'xen-flask', status: 'ok', summary: 'FLASK enforcing: apply loads the plan\'s policy' }
      : hasFlask(caps)
        ? { id: 'xen-flask', status: 'warn', summary: 'FLASK permissive: the plan\'s policy is loaded but denials are only logged', hint: 'boot Xen with flask=enforcing' }
        : { id: 'xen-flask', status: 'warn', summary: 'no XSM/FLASK in this hypervisor: the plan\'s policy is compiled but not enforced', hint: 'build Xen with CONFIG_XSM=y CONFIG_XSM_FLASK=y and boot it with flask=enforcing' },
  );
  return checks;
}

export async function doctor(): Promise<DoctorReport> {
  if (!existsSync(PRIVCMD)) {
    return {
      checks: [{ id: 'xen', status: 'warn', summary: `not a Xen dom0 (no ${PRIVCMD}): the xen backend cannot deploy here`, hint: 'run mclc in dom0 of a Xen host to deploy with `backend xen` (spec/xen.md)' }],
    };
  }
  const checks: DoctorCheck[] = [];
  try {
    accessSync(PRIVCMD, constants.R_OK | constants.W_OK);
    checks.push({ id: 'xen-privileges', status: 'ok', summary: `${PRIVCMD} is usable` });
  } catch {
    checks.push({ id: 'xen-privileges', status: 'fail', summary: `${PRIVCMD} cannot be opened by this user`, hint: 'run mclc as root in dom0' });
  }
  for (const d of ['xenstored', 'xenconsoled']) {
    checks.push(
      running(d) || (d === 'xenstored' && running('oxenstored'))
        ? { id: `xen-${d}`, status: 'ok', summary: `${d} runs` }
        : { id: `xen-${d}`, status: 'fail', summary: `${d} does not run`, hint: 'start the Xen services: systemctl start xencommons (or xenstored, xen-init-dom0, xenconsoled)' },
    );
  }
  const consoleDir = process.env.MCL_XEN_CONSOLE_DIR ?? '/var/log/xen/console';
  checks.push(
    existsSync(consoleDir)
      ? { id: 'xen-console-log', status: 'ok', summary: `guest consoles are logged in ${consoleDir}` }
      : { id: 'xen-console-log', status: 'warn', summary: `no ${consoleDir}: \`mclc logs\` shows nothing`, hint: 'run xenconsoled with --log=guest (XENCONSOLED_TRACE=guest in /etc/default/xencommons)' },
  );
  checks.push(onPath(process.env.MCL_XL ?? 'xl') || existsSync(process.env.MCL_XL ?? '') ? { id: 'xen-xl', status: 'ok', summary: 'xl found' } : { id: 'xen-xl', status: 'fail', summary: 'no xl on PATH', hint: 'apt-get install xen-utils-4.17' });
  let helper: string | null = null;
  try {
    helper = await nativeProgram(HELPER);
    checks.push({ id: 'xen-helper', status: 'ok', summary: `dom0 helper ${helper}` });
  } catch (e) {
    checks.push({ id: 'xen-helper', status: 'fail', summary: (e as Error).message.split('\n')[0], hint: (e as { hint?: string }).hint ?? 'apt-get install libxen-dev gcc' });
  }
  if (helper) {
    try {
      const caps = await new XlToolstack({ helper }).check();
      checks.push(...capabilityChecks(caps));
      if (hasFlask(caps) && !onPath('checkpolicy')) checks.push({ id: 'xen-checkpolicy', status: 'fail', summary: 'no checkpolicy to compile the plan\'s FLASK policy', hint: 'apt-get install checkpolicy m4' });
    } catch (e) {
      checks.push({ id: 'xen-hypervisor', status: 'fail', summary: (e as Error).message, hint: (e as { hint?: string }).hint });
    }
  }
  return { checks };
}
