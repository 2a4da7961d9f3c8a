#!/bin/sh
# The operator's view of the cluster: usage lines from the jobs of every
# organisation, printed (`mclc logs accounting`) and kept in /tmp/usage.log.

exec 3<>/dev/mcl/usage
echo "accounting: collecting usage"
while :; do
  if ! IFS= read -r LINE <&3; then sleep 0.2; continue; fi
  msg=$(printf '%s' "$LINE" | sed -n 's/.*"message":"\([^"]*\)".*/\1/p')
  org=$(printf '%s' "$LINE" | sed -n 's/.*"org":"\([^"]*\)".*/\1/p')
  cpu=$(printf '%s' "$LINE" | sed -n 's/.*"cpu_seconds":"\([0-9]*\)".*/\1/p')
  [ -n "$msg" ] && echo "accounting: [$org] $msg (cpu ${cpu}s)" | tee -a /tmp/usage.log
done
