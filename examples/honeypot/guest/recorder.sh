#!/bin/sh
# Stores what the traps saw: one line per request, printed to the console
# (`mclc logs recorder`) and kept in /tmp/seen.log. It only accepts log lines;
# the broker refuses anything else on its port.
#
# The framing is mcl-msg's, the broker's guest library (see its header).

. mcl-msg

line() {
  mcl_field "$MCL_BODY" message seen
  echo "$seen" >>/tmp/seen.log
  echo "recorder: $seen"
}

echo "recorder: listening"
mcl_serve logs line
