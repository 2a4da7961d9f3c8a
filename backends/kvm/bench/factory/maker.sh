#!/bin/sh
# Times ROUNDS forks each way, from this guest's request to the new instance's
# first answer, with the guest's uptime clock (10 ms steps). Prints one line
# per measure: `bench factory MS` or `bench session MS`, then `bench done`.
. mcl-msg
MCL_TIMEOUT=120
ROUNDS=${MCL_PARAM_ROUNDS:-5}

now() {
  read -r up _ </proc/uptime
  cs=${up/./}
  t=$((cs * 10))
}

i=0
while [ $i -lt "$ROUNDS" ]; do
  now; t0=$t
  mcl_create workers || { echo "bench error create: $MCL_ERROR"; exit 1; }
  h=$MCL_HANDLE
  MCL_TO=$h mcl_call workers ping '{"n":1}' || { echo "bench error call: $MCL_ERROR"; exit 1; }
  now; echo "bench factory $((t - t0))"
  mcl_destroy workers "$h"

  now; t0=$t
  mcl_open sessions || { echo "bench error open: $MCL_ERROR"; exit 1; }
  mcl_call sessions ping '{"n":1}' || { echo "bench error session call: $MCL_ERROR"; exit 1; }
  now; echo "bench session $((t - t0))"
  mcl_close sessions
  i=$((i + 1))
done
echo "bench done"
sleep 3600
