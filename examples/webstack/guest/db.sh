#!/bin/sh
# The database: a key-value store (std.kv.Kv) kept in the guest's own memory,
# served by mcl-kv, the reference std.kv server every image carries. The
# component's `max_keys` parameter bounds the number of keys.
exec mcl-kv --name db --max-keys "${MCL_PARAM_MAX_KEYS:-1000}" kv
