#!/bin/sh
# Stores what the traps saw: one line per request, printed to the console
# (`mclc logs recorder`) and kept in /tmp/seen.log. It only accepts log lines;
# the broker refuses anything else on its port.

str() {
  _p="\"$1\":\""
  case "$2" in *"$_p"*) V=${2#*"$_p"}; V=${V%%\"*} ;; *) V="" ;; esac
}

exec 3<>/dev/mcl/logs 5>>/tmp/seen.log
echo "recorder: listening"
while :; do
  if ! IFS= read -r LINE <&3; then sleep 0.2; continue; fi
  str message "$LINE"
  [ -n "$V" ] || continue
  echo "recorder: $V"
  echo "$V" >&5
done
