#!/usr/bin/env bash
# The mcl demo: the webstack example end to end on this machine.
#
#   bash scripts/demo.sh          # run the demo and destroy the deployment at the end
#   bash scripts/demo.sh --keep   # leave it running (stop it with `mclc destroy --root examples/webstack`)
#
# Steps: host packages (QEMU, busybox-static, the cloud kernel), npm packages
# and the build, `mclc validate` and `mclc plan`, `mclc apply` (six components
# as copy-on-write clones of one template guest, every channel through the
# broker), HTTP requests to the exposed port that travel web -> auth ->
# handler -> app -> db and back, an attempt the broker refuses and that shows
# in `mclc status`, the audit log, and `mclc destroy`.
#
# The deployment is destroyed by default so that no guests stay behind on a
# shared machine; --keep leaves it running for you to explore.
set -euo pipefail

keep=0
for a in "$@"; do
  case "$a" in
    --keep) keep=1 ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "demo: unknown option $a (try --help)" >&2; exit 1 ;;
  esac
done

cd "$(dirname "$0")/.."
repo=$(pwd)
ws=examples/webstack
port=8080
plan="$ws/.mcl/webstack.plan"

bold=$(tput bold 2>/dev/null || true)
plain=$(tput sgr0 2>/dev/null || true)
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
run() { printf '%s$ %s%s\n' "$bold" "$*" "$plain"; "$@"; }
# The bundled CLI built in step 2, as a user runs it.
mclc() { node "$repo/cli/bin/mclc.mjs" "$@"; }

step "1. Host packages (QEMU, busybox-static, the Debian cloud kernel)"
if ! bash backends/kvm/scripts/install-deps.sh; then
  if command -v sudo >/dev/null; then sudo bash backends/kvm/scripts/install-deps.sh; else exit 1; fi
fi

step "2. npm packages and the build"
# `npm install`, not `npm ci`: see scripts/setup.sh for why. With packages
# already in place it only checks them.
run npm install --no-audit --no-fund
run npm run build --silent

step "3. Check the sources and compute the plan"
run mclc validate "$ws"
mkdir -p "$ws/.mcl"
run mclc plan "$ws" --out "$plan"

cleanup() {
  if [ "$keep" = 0 ]; then
    step "8. Destroy"
    mclc destroy --root "$ws" || true
  fi
}
trap cleanup EXIT

step "4. Apply: fork the components from one template guest and wire them through the broker"
run mclc apply "$plan" --root "$ws"

step "5. HTTP requests to the exposed port"
curl_show() { printf '%s$ curl %s%s\n' "$bold" "$*" "$plain"; curl -sS -m 30 -w '  -> HTTP %{http_code}\n' "$@"; }
curl_show "http://127.0.0.1:$port/"
curl_show -X POST -H 'Authorization: Bearer demo-token' "http://127.0.0.1:$port/orders?item=book&quantity=2"
curl_show -H 'Authorization: Bearer demo-token' "http://127.0.0.1:$port/orders/1"
curl_show "http://127.0.0.1:$port/orders/1"

step "6. A refused attempt: web sends the token store a line that is not JSON, an oversized token and an unknown operation"
curl_show "http://127.0.0.1:$port/probe"
run mclc status --root "$ws"

step "7. What the audit collector saw"
run mclc logs audit --root "$ws" --tail 10

if [ "$keep" = 1 ]; then
  printf '\nThe deployment keeps running: try `curl http://127.0.0.1:%s/`, `node --import tsx cli/src/main.ts status --root %s`,\nand stop it with `node --import tsx cli/src/main.ts destroy --root %s`.\n' "$port" "$ws" "$ws"
fi
