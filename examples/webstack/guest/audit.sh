#!/bin/sh
# Collects audit lines (std.log.Logs) from the components that handle secrets
# and prints them, so `mclc logs audit` shows them.
#
# The framing is mcl-msg's, the broker's guest library (see its header).

. mcl-msg

line() {
  mcl_field "$MCL_BODY" level level
  mcl_field "$MCL_BODY" message message
  echo "audit: [$level] $message"
}

echo "audit: collecting on /dev/mcl/logs"
mcl_serve logs line
