#!/bin/sh
# The operator's view of the cluster: usage lines from the jobs of every
# organisation, printed (`mclc logs accounting`) and kept in /tmp/usage.log.
#
# The framing is mcl-msg's, the broker's guest library (see its header).

. mcl-msg

line() {
  mcl_field "$MCL_BODY" message message
  mcl_field "$MCL_BODY" org org
  mcl_field "$MCL_BODY" cpu_seconds cpu
  echo "[$org] $message (cpu ${cpu}s)" >>/tmp/usage.log
  echo "accounting: [$org] $message (cpu ${cpu}s)"
}

echo "accounting: collecting usage"
mcl_serve usage line
