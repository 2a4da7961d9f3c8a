#!/usr/bin/env bash
# Installs the host packages the KVM backend needs: QEMU (system emulator and
# tools), a static busybox for the guest initramfs, the Debian cloud kernel
# (with its virtio modules), cpio, and a C compiler for the QEMU zygote's
# preloaded library (src/vm/zygote.ts). Idempotent: when everything is present it
# only checks. Run as root on Debian or Ubuntu.
set -euo pipefail

packages=(qemu-system-x86 qemu-utils busybox-static linux-image-cloud-amd64 cpio gcc libc6-dev)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all host packages present (${packages[*]})"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${missing[*]}; run this script as root (or with sudo)" >&2
  exit 1
fi

# Other installers may run at the same time on shared machines: serialize apt.
lock=/tmp/mcl-apt.lock
export DEBIAN_FRONTEND=noninteractive
flock "$lock" apt-get update -q
flock "$lock" apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: installed ${missing[*]}"
