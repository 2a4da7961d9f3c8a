#!/bin/sh
# Stores what the traps saw: one line per request, printed to the console
# (`mclc logs recorder`) and kept in /tmp/seen.log. It only accepts log lines;
# the broker refuses anything else on its port.
#
# `mcl-msg serve` (the broker's guest tool) runs this script again with
# --line for every line the traps send, the message body on stdin.

if [ "$1" = --line ]; then
  IFS= read -r body
  msg=${body#*\"message\":\"}; msg=${msg%%\"*}
  echo "$msg" >>/tmp/seen.log
  # A send's reply is discarded, so the line goes to the console through stderr.
  echo "recorder: $msg" >&2
  exit 0
fi

echo "recorder: listening"
exec mcl-msg serve logs /bin/sh "$0" --line
