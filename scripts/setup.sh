#!/usr/bin/env bash
# Sets up a fresh Debian machine for mcl: the host packages the KVM backend
# needs (QEMU, busybox-static, a kernel), then the npm packages and the build.
# Idempotent: a second run only checks. Run as root (or with sudo) on a fresh
# machine; set MCL_SKIP_APT=1 where the packages are already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${MCL_SKIP_APT:-0}" != 1 ]; then
  bash backends/kvm/scripts/install-deps.sh
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup: mcl needs Node.js 20.19 or newer (found $(node --version))" >&2
  exit 1
fi

npm ci --no-audit --no-fund
npm run build
