#!/bin/sh
# A batch job: computes a little work item after item, stores each result in
# its organisation's store and reports its usage to the accounting service.
# It stops itself (exit 0) once it has used its CPU quota.

ORG="${MCL_PARAM_ORG:-unknown}"
QUOTA="${MCL_PARAM_QUOTA_CPU_SECONDS:-600}"
WORKER="${MCL_INSTANCE:-job}#${MCL_CLONE:-0}"
exec 3<>/dev/mcl/results 4<>/dev/mcl/usage
SEQ=0

call() {
  SEQ=$((SEQ + 1))
  printf '{"t":"call","op":"%s","id":%d,"body":%s}\n' "$1" "$SEQ" "$2" >&3
  R=""
  while IFS= read -r -t 10 line <&3; do
    case "$line" in *"\"id\":$SEQ,"* | *"\"id\":$SEQ}"*) R=$line; return 0 ;; esac
  done
}

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
  call put "{\"key\":\"result:$WORKER:$n\",\"value\":\"$sum\"}"
  used=$(cpu_seconds)
  printf '{"t":"send","op":"line","body":{"level":"info","message":"%s item %s done","fields":{"org":"%s","cpu_seconds":"%s"}}}\n' "$WORKER" "$n" "$ORG" "$used" >&4
  if [ "$used" -ge "$QUOTA" ]; then
    echo "job $WORKER: quota used after $n items"
    exit 0
  fi
  sleep 5
done
