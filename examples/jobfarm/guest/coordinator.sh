#!/bin/sh
# The coordinator: creates a worker per job up to its factory's bound, sees
# one more refused and a bad job name refused, gives the workers jobs, makes
# one crash and uses it again once restarted, then stops: its workers are
# destroyed with it. Every step is printed (`mclc logs coordinator`).

. mcl-msg
MCL_TIMEOUT=120

say() {
  echo "coordinator: $*"
}

for j in alpha beta gamma; do
  if mcl_create workers "{\"job\":\"$j\"}"; then
    say "created $j as $MCL_HANDLE"
  else
    say "create $j failed ($?): $MCL_ERROR"
  fi
done
mcl_create workers '{"job":"delta"}'
say "fourth create: status $?"
mcl_create workers '{"job":"Not A Job!"}'
say "bad job name: status $?"
mcl_list workers
say "live: $MCL_HANDLES"

for h in $MCL_HANDLES; do
  MCL_TO=$h mcl_call workers run "{\"n\":$((h + 2))}"
  say "worker $h answered $MCL_REPLY"
done

first=${MCL_HANDLES%% *}
MCL_TO=$first mcl_send workers crash '{"n":0}'
say "asked worker $first to crash"
# The worker is restarted by its policy; its handle stays the same.
tries=0
until MCL_TO=$first mcl_call workers run '{"n":7}'; do
  tries=$((tries + 1))
  [ $tries -ge 60 ] && break
  sleep 2
done
say "after restart worker $first answered $MCL_REPLY"
say "done"
sleep 2
exit 1
