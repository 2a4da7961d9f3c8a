#!/bin/sh
# A batch job: computes a little work item after item, stores each result in
# its organisation's store and reports its usage to the accounting service.
# It stops itself (exit 0) once it has used its CPU quota.
#
# The framing is mcl-msg's, the broker's guest library (see its header).

. mcl-msg

ORG="${MCL_PARAM_ORG:-unknown}"
QUOTA="${MCL_PARAM_QUOTA_CPU_SECONDS:-600}"
WORKER="${MCL_INSTANCE:-job}#${MCL_CLONE:-0}"
# Store keys allow letters, digits and . _ : / - only (std.kv.Key), so not the '#'.
KEY="result:${MCL_INSTANCE:-job}/${MCL_CLONE:-0}"
# A result the store has not taken within 10 s is given up: the job goes on.
MCL_TIMEOUT=10
mcl_str "$ORG" org

# CPU seconds this shell and its children have used so far (utime + stime in ticks).
cpu_seconds() {
  set -- $(sed 's/.*) //' /proc/$$/stat)
  echo $(( (${12} + ${13} + ${14} + ${15}) / 100 ))
}

echo "job $WORKER of $ORG: quota ${QUOTA}s of CPU"
n=0
while :; do
  n=$((n + 1))
  # The work: the sum of the first 2000 squares, by hand.
  i=0 sum=0
  while [ $i -lt 2000 ]; do i=$((i + 1)); sum=$((sum + i * i)); done
  mcl_call results put "{\"key\":\"$KEY:$n\",\"value\":\"$sum\"}" || echo "job $WORKER: item $n not stored: $MCL_ERROR" >&2
  used=$(cpu_seconds)
  mcl_str "$WORKER item $n done" message
  mcl_send usage line "{\"level\":\"info\",\"message\":$message,\"fields\":{\"org\":$org,\"cpu_seconds\":\"$used\"}}"
  if [ "$used" -ge "$QUOTA" ]; then
    echo "job $WORKER: quota used after $n items"
    exit 0
  fi
  sleep 5
done
