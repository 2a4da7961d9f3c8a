#!/bin/sh
# A worker: answers `run` with the square of the job's number, tagged with
# the job its creator chose (MCL_PARAM_JOB), and records it in the store.
# `crash` makes it exit with a failure, to be restarted.

. mcl-msg

job() {
  case $MCL_OP in
  run)
    mcl_field "$MCL_BODY" n n
    mcl_send results store "{\"message\":\"job $MCL_PARAM_JOB: $n squared is $((n * n))\"}"
    mcl_reply "{\"job\":\"$MCL_PARAM_JOB\",\"n\":$n,\"square\":$((n * n))}"
    ;;
  crash)
    echo "worker $MCL_PARAM_JOB: crashing on purpose"
    exit 1
    ;;
  esac
}

echo "worker $MCL_PARAM_JOB: ready"
mcl_serve jobs job
