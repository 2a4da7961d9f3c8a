#!/usr/bin/env bash
# Sets up a fresh Debian machine for mcl: the host packages the KVM backend
# needs (QEMU, busybox-static, a kernel) and the Xen backend's tests need
# (libxen-dev, checkpolicy, m4), then the npm packages and the build.
# Idempotent: a second run only checks. Run as root (or with sudo) on a fresh
# machine; set MCL_SKIP_APT=1 where the packages are already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${MCL_SKIP_APT:-0}" != 1 ]; then
  bash backends/kvm/scripts/install-deps.sh
  # The Xen backend's native tests (backends/xen/test/native.test.ts): its C programs link against
  # libxen-dev, and the plan's FLASK policy is compiled with checkpolicy (m4 expands Xen's policy macros).
  # No hypervisor is needed for them.
  xen_missing=()
  [ -e /usr/include/libxenvchan.h ] || xen_missing+=(libxen-dev)
  command -v checkpolicy >/dev/null 2>&1 || xen_missing+=(checkpolicy)
  command -v m4 >/dev/null 2>&1 || xen_missing+=(m4)
  if [ ${#xen_missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "setup: ${xen_missing[*]} missing; run this script as root (or with sudo) to install them" >&2
      exit 1
    fi
    flock /tmp/mcl-apt.lock apt-get update -q
    DEBIAN_FRONTEND=noninteractive flock /tmp/mcl-apt.lock apt-get install -y -q --no-install-recommends "${xen_missing[@]}"
  fi
  # The packages the nested-Xen test bed boots (the hypervisor, its tools, the dom0 kernel), downloaded
  # and never installed (spec/xen-testing.md); the tests find them in the cache.
  bash backends/xen/test/nested/fetch-debs.sh
  # Neovim, for the test that runs the language server in a real editor
  # (lsp/test/neovim.test.ts; in CI it must run, elsewhere it is skipped without nvim).
  if ! command -v nvim >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "setup: neovim is missing; run this script as root (or with sudo) to install it" >&2
      exit 1
    fi
    flock /tmp/mcl-apt.lock apt-get update -q
    DEBIAN_FRONTEND=noninteractive flock /tmp/mcl-apt.lock apt-get install -y -q --no-install-recommends neovim
  fi
  # OpenSSH (server and client), for the tests that deploy to hosts simulated as network namespaces, each
  # running its own sshd (cli/test/remote-hosts.test.ts; in CI it must run, elsewhere it is skipped without them).
  ssh_missing=()
  [ -x /usr/sbin/sshd ] || ssh_missing+=(openssh-server)
  command -v ssh >/dev/null 2>&1 || ssh_missing+=(openssh-client)
  # openssl makes the self-signed certificates the links between hosts pin (backends/broker/src/link.ts).
  command -v openssl >/dev/null 2>&1 || ssh_missing+=(openssl)
  # ss (iproute2) tells a live migration whether QEMU read everything sent to the moving clone (backends/kvm/src/vm/migrate.ts).
  command -v ss >/dev/null 2>&1 || ssh_missing+=(iproute2)
  if [ ${#ssh_missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "setup: ${ssh_missing[*]} missing; run this script as root (or with sudo) to install them" >&2
      exit 1
    fi
    flock /tmp/mcl-apt.lock apt-get update -q
    DEBIAN_FRONTEND=noninteractive flock /tmp/mcl-apt.lock apt-get install -y -q --no-install-recommends "${ssh_missing[@]}"
  fi
  # Prometheus, for the test that scrapes the supervisor's metrics endpoint with a real one
  # (backends/kvm/test/metrics.test.ts; in CI it must run, elsewhere it is skipped without it).
  if ! [ -x /usr/bin/prometheus ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "setup: prometheus is missing; run this script as root (or with sudo) to install it" >&2
      exit 1
    fi
    flock /tmp/mcl-apt.lock apt-get update -q
    DEBIAN_FRONTEND=noninteractive flock /tmp/mcl-apt.lock apt-get install -y -q --no-install-recommends prometheus
  fi
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup: mcl needs Node.js 20.19 or newer (found $(node --version))" >&2
  exit 1
fi

# `npm install` rather than `npm ci`: the registry these machines reach serves
# only the Linux builds of rollup's optional per-platform packages, so the
# lockfile cannot list the others and `npm ci` rejects it as out of sync.
# `npm install` installs the locked versions all the same.
npm install --no-audit --no-fund
npm run build
