#!/bin/sh
# Collects audit lines (std.log.Logs) from the components that handle secrets
# and prints them, so `mclc logs audit` shows them.
#
# The broker's guest tool does the framing: `mcl-msg serve` runs this script
# again with --line for every line sent, the message body on stdin. Collecting
# is off every request's path, so the fork per line costs nothing that waits.

if [ "$1" = --line ]; then
  IFS= read -r body
  level=${body#*\"level\":\"}; level=${level%%\"*}
  msg=${body#*\"message\":\"}; msg=${msg%%\"*}
  # A send's reply is discarded, so the line goes to the console through stderr.
  echo "audit: [$level] $msg" >&2
  exit 0
fi

echo "audit: collecting on /dev/mcl/logs"
exec mcl-msg serve logs /bin/sh "$0" --line
