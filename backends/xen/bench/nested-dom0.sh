#!/bin/sh
# The dom0 half of `npm run bench:xen` (xen-bench.ts writes the xl.cfg files
# /run/nx-<name>.cfg, then runs this in the nested Xen's dom0):
#
#   nested-dom0.sh COLD RESTORES
#
# 1. COLD cold boots of the test bed's PVH guest, one at a time: `xl create`,
#    then dom0 offers the vchan; ready = the guest answered on it.
# 2. The template: booted once, and once its console says it is up (it then
#    waits for dom0's vchan), saved with `xl save` (which ends the domain).
# 3. RESTORES restores of the saved template, one at a time: `xl restore -p`
#    under a new name, the vchan offered, `xl unpause`; ready = the guest
#    answered, through Linux's resume path.
# Every guest stays up until the end, when the memory of each is read from the
# hypervisor (nx-domstat: tot_pages, shr_pages) and all are destroyed.
# Times come from /proc/uptime (10 ms steps). Output: "nx-bench KEY VALUE..." lines.
set -eu
COLD=$1
RESTORES=$2
SAVE=/var/lib/xen/nx-tpl.save
ms() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }
domid() { xl domid "$1"; }
offer() { nx-vchan-serve "$1" "/local/domain/$1/data/nx/p1" "ping $1" >/dev/null; }
cleanup() { for d in $(xl list | awk 'NR > 2 { print $1 }'); do xl destroy "$d" 2>/dev/null || true; done; rm -f "$SAVE"; }
trap cleanup EXIT

i=1
while [ "$i" -le "$COLD" ]; do
  t0=$(ms)
  xl create "/run/nx-cold$i.cfg" >/dev/null 2>&1
  d=$(domid "nx-cold$i")
  t1=$(ms)
  offer "$d"
  t2=$(ms)
  echo "nx-bench cold $i $d $((t1 - t0)) $((t2 - t0))"
  i=$((i + 1))
done

t0=$(ms)
xl create /run/nx-tpl.cfg >/dev/null 2>&1
n=0
until grep -q 'nx-guest: up' /var/log/xen/console/guest-nx-tpl.log 2>/dev/null; do
  n=$((n + 1))
  [ "$n" -lt 9000 ] || { echo "nx-bench error the template never came up"; exit 1; }
  sleep 0.1
done
t1=$(ms)
xl save nx-tpl "$SAVE" >/dev/null 2>&1
t2=$(ms)
echo "nx-bench template $((t1 - t0)) $((t2 - t1)) $(stat -c %s "$SAVE")"

i=1
while [ "$i" -le "$RESTORES" ]; do
  t0=$(ms)
  xl restore -p "/run/nx-r$i.cfg" "$SAVE" >/dev/null 2>&1
  d=$(domid "nx-r$i")
  t1=$(ms)
  offer "$d" &
  xl unpause "$d"
  wait $!
  t2=$(ms)
  echo "nx-bench restore $i $d $((t1 - t0)) $((t2 - t0))"
  i=$((i + 1))
done

nx-domstat | while read -r d tot shr max cpu paused; do
  name=$(xl list "$d" 2>/dev/null | awk 'NR == 2 { print $1 }')
  echo "nx-bench mem $d ${name:-?} $tot $shr $max $cpu $paused"
done
xl list | sed 's/^/nx-bench xl /'
echo "nx-bench free_mib $(xl info | awk '/^free_memory/ { print $3 }')"
