#!/bin/sh
# /init of the smoke test's PVH guest: load the vchan drivers, answer one line
# on the vchan dom0 offers at data/nx/p1, then idle until dom0 destroys it.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /etc/nx-modules); do insmod "/mods/$m.ko"; done
echo "nx-guest: up"
nx-vchan-echo data/nx/p1 && echo "nx-guest: answered"
exec sleep 2147483647
