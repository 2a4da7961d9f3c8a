#!/usr/bin/env bash
# Downloads (does not install) the Debian packages the nested-Xen test bed
# boots: the hypervisor (xen-hypervisor-4.17-amd64), its tools and daemons
# (xen-utils-4.17) and the generic kernel that runs as the PV dom0 (the
# package linux-image-amd64 depends on; it has CONFIG_XEN_DOM0=y, the cloud
# kernel has not). They are unpacked by the harness, never installed: an
# installed hypervisor would make GRUB boot the host into Xen, and a second
# kernel would change the host's default boot entry.
#
# Into $1, else $MCL_CACHE_DIR/xen-nested/debs, else ~/.cache/mcl/xen-nested/debs.
# Idempotent: a package already there is not fetched again. apt-get checks
# each file against the signed archive index. Needs libxen-dev installed for
# the libraries the tools link against (scripts/setup.sh installs it).
set -euo pipefail
dest=${1:-${MCL_CACHE_DIR:-$HOME/.cache/mcl}/xen-nested/debs}
mkdir -p "$dest"
cd "$dest"

dom0_kernel() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
dom0_kernel=$(dom0_kernel)
if [ -z "$dom0_kernel" ] && [ "$(id -u)" -eq 0 ]; then
  # A fresh machine may have no package lists yet.
  flock /tmp/mcl-apt.lock apt-get update -q >/dev/null
  dom0_kernel=$(dom0_kernel)
fi
if [ -z "$dom0_kernel" ]; then
  echo "fetch-debs: apt-cache does not know linux-image-amd64; run apt-get update" >&2
  exit 1
fi
want=(xen-hypervisor-4.17-amd64 xen-utils-4.17 "$dom0_kernel")
missing=()
for p in "${want[@]}"; do
  ls "${p}"_*.deb >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "fetch-debs: ${want[*]} present in $dest"
  exit 0
fi
# Other installers may run at the same time on shared machines: serialize with them.
flock /tmp/mcl-apt.lock apt-get download -q "${missing[@]}" 2>&1 | grep -v 'unsandboxed as root' || true
for p in "${missing[@]}"; do
  if ! ls "${p}"_*.deb >/dev/null 2>&1; then
    echo "fetch-debs: apt-get download $p failed (is the Debian archive reachable? try apt-get update)" >&2
    exit 1
  fi
done
echo "fetch-debs: fetched ${missing[*]} into $dest"
