#!/bin/sh
# An organisation's private result store (std.kv.Kv), kept in the guest's own
# memory by mcl-kv, the reference std.kv server every image carries. Only its
# organisation's jobs are wired to it.
exec mcl-kv --name store kv
