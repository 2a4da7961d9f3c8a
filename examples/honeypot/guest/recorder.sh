#!/bin/sh
# Stores what the traps saw: one line per request, printed to the console
# (`mclc logs recorder`) and kept in /tmp/seen.log. It only accepts log lines;
# the broker refuses anything else on its port.

exec 3<>/dev/mcl/logs
echo "recorder: listening"
while :; do
  if ! IFS= read -r LINE <&3; then sleep 0.2; continue; fi
  msg=$(printf '%s' "$LINE" | sed -n 's/.*"message":"\(\([^"\\]\|\\.\)*\)".*/\1/p')
  [ -n "$msg" ] && echo "recorder: $msg" | tee -a /tmp/seen.log
done
