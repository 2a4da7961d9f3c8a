#!/bin/sh
# The operator's view of the cluster: usage lines from the jobs of every
# organisation, printed (`mclc logs accounting`) and kept in /tmp/usage.log.
#
# `mcl-msg serve` (the broker's guest tool) runs this script again with
# --line for every usage line, the message body on stdin.

if [ "$1" = --line ]; then
  IFS= read -r body
  msg=${body#*\"message\":\"}; msg=${msg%%\"*}
  org=${body#*\"org\":\"}; org=${org%%\"*}
  cpu=${body#*\"cpu_seconds\":\"}; cpu=${cpu%%\"*}
  echo "[$org] $msg (cpu ${cpu}s)" >>/tmp/usage.log
  echo "accounting: [$org] $msg (cpu ${cpu}s)" >&2
  exit 0
fi

echo "accounting: collecting usage"
exec mcl-msg serve usage /bin/sh "$0" --line
