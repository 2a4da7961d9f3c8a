#!/bin/sh
# /init of the test bed's PVH guest (the smoke test and the benchmark): load
# the vchan drivers, say it is up, then answer a line on the vchan dom0
# offers at data/nx/p1 each time dom0 offers one. A guest saved while it
# waits for dom0 and restored later (the benchmark's parked template) goes on
# waiting in the restored domain, whose relative xenstore path is its own.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /etc/nx-modules); do insmod "/mods/$m.ko"; done
echo "nx-guest: up"
while :; do
  nx-vchan-echo data/nx/p1 && echo "nx-guest: answered"
done
