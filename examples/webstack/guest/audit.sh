#!/bin/sh
# Collects audit lines (std.log.Logs) from the components that handle secrets
# and prints them, so `mclc logs audit` shows them.

str() {
  _p="\"$1\":\""
  case "$2" in *"$_p"*) V=${2#*"$_p"}; V=${V%%\"*} ;; *) V="" ;; esac
}

exec 3<>/dev/mcl/logs
echo "audit: collecting on /dev/mcl/logs"
while :; do
  if ! IFS= read -r LINE <&3; then sleep 0.2; continue; fi
  # {"t":"send","op":"line","body":{"level":"info","message":"..."}}
  str level "$LINE"; level=$V
  str message "$LINE"; msg=$V
  [ -n "$level" ] && echo "audit: [$level] $msg"
done
