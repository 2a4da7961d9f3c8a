#!/bin/sh
# Keeps the workers' results: prints each line (`mclc logs store`).

. mcl-msg

line() {
  mcl_field "$MCL_BODY" message seen
  echo "store: $seen"
}

echo "store: listening"
mcl_serve results line
