#!/bin/sh
# Collects audit lines (std.log.Logs) from the components that handle secrets
# and prints them, so `mclc logs audit` shows them.

exec 3<>/dev/mcl/logs
echo "audit: collecting on /dev/mcl/logs"
while :; do
  if ! IFS= read -r LINE <&3; then sleep 0.2; continue; fi
  # {"t":"send","op":"line","body":{"level":"info","message":"..."}}
  level=$(printf '%s' "$LINE" | sed -n 's/.*"level":"\([a-z]*\)".*/\1/p')
  msg=$(printf '%s' "$LINE" | sed -n 's/.*"message":"\(\([^"\\]\|\\.\)*\)".*/\1/p')
  [ -n "$level" ] && echo "audit: [$level] $msg" | tee -a /tmp/audit.log
done
