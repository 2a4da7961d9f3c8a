// The native side of the Xen backend, checked on a machine without Xen:
// the dom0 helper and the static guest client compile and link against
// Debian's libxen-dev (with the fork calls resolved), every xl.cfg generated
// for the examples parses with libxlutil (xl's own parser), and every
// example's FLASK policy compiles with checkpolicy while a leaking rule is
// refused. Needs libxen-dev, gcc, checkpolicy and m4 (scripts/setup.sh);
// where one is missing the test says which and skips, except in CI, where
// it fails.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Plan } from '@mcl/plan';
import { buildPolicy, flaskLabel, flaskModule, instanceType, templateType } from '../src/flask';
import { GUEST_CLIENT, HELPER, NATIVE_DIR, nativeProgram } from '../src/native';
import { prepareGuestTools, XEN_GUEST_MODULES } from '../src/image';
import { buildImage } from '@mcl/backend-kvm/vm';
import { cloneDomainName, templateDomainName } from '../src/names';
import { domainConfig } from '../src/xlcfg';

const repo = join(import.meta.dirname, '..', '..', '..');
const work = mkdtempSync(join(tmpdir(), 'mcl-xen-native-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const onPath = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const missing = [
  !existsSync('/usr/include/libxenvchan.h') && 'libxen-dev',
  !onPath('cc') && 'gcc',
  !onPath('checkpolicy') && 'checkpolicy',
  !onPath('m4') && 'm4',
].filter((x): x is string => typeof x === 'string');
if (missing.length && process.env.CI) throw new Error(`the Xen native tests need ${missing.join(', ')}: run scripts/setup.sh`);
if (missing.length) console.warn(`skipping the Xen native tests: ${missing.join(', ')} missing (scripts/setup.sh installs them)`);

const examples: { name: string; plan: Plan }[] = readdirSync(join(repo, 'examples'))
  .filter((d) => existsSync(join(repo, 'examples', d, `${d}.plan.json`)))
  .map((d) => ({ name: d, plan: JSON.parse(readFileSync(join(repo, 'examples', d, `${d}.plan.json`), 'utf8')) as Plan }));

function cc(args: string[]): string {
  return execFileSync('cc', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe.skipIf(missing.length > 0)('the Xen backend against Debian libxen-dev', () => {
  it('builds the dom0 helper with the fork calls resolved, and it fails cleanly without a hypervisor', () => {
    const out = join(work, 'mcl-xen');
    cc([...HELPER.flags, '-Werror', join(NATIVE_DIR(repo), HELPER.source), '-o', out, ...HELPER.libs]);
    const syms = execFileSync('nm', ['-D', out], { encoding: 'utf8' });
    for (const s of ['xc_memshr_fork', 'xc_memshr_fork_reset', 'xc_memshr_audit', 'libxenvchan_server_init', 'xs_introduce_domain']) expect(syms).toMatch(new RegExp(`U ${s}(@|$)`, 'm'));
    if (!existsSync('/dev/xen/privcmd')) {
      const r = spawnSync(out, ['check'], { encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('xc_interface_open');
    }
    const usage = spawnSync(out, ['fork', '0', 'x'], { encoding: 'utf8' });
    expect(usage.status).toBe(64);
  });

  it('builds the guest vchan client statically, for the busybox initramfs', () => {
    const out = join(work, 'mcl-vchan');
    cc([...GUEST_CLIENT.flags, '-Werror', join(NATIVE_DIR(repo), GUEST_CLIENT.source), '-o', out, ...GUEST_CLIENT.libs]);
    const headers = execFileSync('readelf', ['-l', out], { encoding: 'utf8' });
    expect(headers).not.toContain('INTERP');
    expect(spawnSync(out, [], { encoding: 'utf8' }).status).toBe(64);
  });

  it('builds the guest image: the KVM image plus the Xen guest modules and the vchan client', async () => {
    const cacheDir = join(work, 'cache');
    const client = await nativeProgram(GUEST_CLIENT, { cacheDir });
    const tools = await prepareGuestTools(client, { cacheDir });
    const b = await buildImage({ name: 'busybox', kernel: 'debian-cloud', modules: [...XEN_GUEST_MODULES], files: [] }, { cacheDir, guestToolsDir: tools });
    expect(b.modules.slice(-2)).toEqual(['xen_evtchn', 'xen_gntdev']);
    const list = execFileSync('sh', ['-c', `zcat '${b.initrdPath}' | cpio -t 2>/dev/null`], { encoding: 'utf8' }).split('\n');
    expect(list).toEqual(expect.arrayContaining(['usr/bin/mcl-vchan', 'usr/bin/mcl-msg', 'usr/sbin/mcl-agent', 'lib/mcl-modules/xen_gntdev.ko']));
  }, 120_000);

  describe('generated xl.cfg files parse with libxlutil', () => {
    const checker = join(work, 'xlcfg-check');
    const build = () => {
      if (!existsSync(checker)) cc(['-Wall', '-Wextra', '-Werror', join(import.meta.dirname, 'native', 'xlcfg-check.c'), '-o', checker, '-lxlutil', '-lxentoollog']);
    };

    for (const { name, plan } of examples) {
      it(`every template and clone of examples/${name}`, () => {
        build();
        const files: string[] = [];
        const write = (f: string, text: string) => {
          writeFileSync(join(work, f), text);
          files.push(join(work, f));
        };
        const base = { kernel: '/boot/vmlinuz-6.1.0-57-cloud-amd64', ramdisk: '/var/cache/mcl/images/0f3c9a.cpio.gz' };
        for (const t of plan.templates) {
          write(`${name}-${t.id}.cfg`, domainConfig({ ...base, name: templateDomainName('0123456789', t.id), memoryBytes: t.memory_bytes, vcpus: t.vcpus, seclabel: flaskLabel(templateType(t.id)) }));
        }
        for (const i of plan.instances) {
          write(`${name}-${i.id}.cfg`, domainConfig({ ...base, name: cloneDomainName('0123456789', i.id, 0), memoryBytes: i.memory_bytes, vcpus: i.vcpus, seclabel: flaskLabel(instanceType(i.id)) }));
        }
        expect(files.length).toBeGreaterThan(1);
        const r = spawnSync(checker, files, { encoding: 'utf8' });
        expect(r.stdout.split('\n').filter((l) => l && !l.endsWith(': ok'))).toEqual([]);
        expect(r.status).toBe(0);
      });
    }

    it('and the checker refuses what the backend never means', () => {
      build();
      const broken = join(work, 'broken.cfg');
      writeFileSync(broken, 'name = "x"\nmemory = 128 +\n');
      const nic = join(work, 'nic.cfg');
      writeFileSync(nic, domainConfig({ name: 'x', kernel: '/k', ramdisk: '/r', memoryBytes: 128 << 20, vcpus: 1 }).replace('vif = []', 'vif = [ "bridge=xenbr0" ]'));
      const r = spawnSync(checker, [broken, nic], { encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stdout).toContain('broken.cfg: parse error');
      expect(r.stdout).toContain('nic.cfg: must have an empty list: vif');
    });
  });

  describe('FLASK policies compile with checkpolicy -t Xen', () => {
    for (const { name, plan } of examples) {
      it(`examples/${name}: a type per instance, dom0 only`, async () => {
        const module = flaskModule(plan);
        for (const i of plan.instances) expect(module).toContain(`mcl_domain(${instanceType(i.id)})`);
        const r = await buildPolicy(module, { home: repo });
        expect(r.ok ? '' : r.error).toBe('');
        if (r.ok) expect(r.policy.length).toBeGreaterThan(10_000);
      });
    }

    it('refuses a policy in which one guest may map another guest\'s memory', async () => {
      const plan = examples.find((e) => e.name === 'webstack')!.plan;
      const [a, b] = plan.instances.map((i) => instanceType(i.id));
      const leak = await buildPolicy(flaskModule(plan, `allow ${a} ${b}:grant { map_read map_write };`), { home: repo });
      expect(leak.ok).toBe(false);
      if (!leak.ok) expect(leak.error).toMatch(/neverallow .* violated by allow/);
      const bind = await buildPolicy(flaskModule(plan, `allow ${a}_channel ${b}:event bind;`), { home: repo });
      expect(bind.ok).toBe(false);
    });
  });
});
