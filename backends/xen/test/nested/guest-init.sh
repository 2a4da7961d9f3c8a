#!/bin/sh
# /init of the test bed's PVH guest (the smoke test and the benchmark): load
# the vchan drivers, say it is up, answer one line on the vchan dom0 offers
# at data/nx/p1, then idle. Until dom0 offers it, nx-vchan-echo polls
# xenstore (5 times a second); once it has answered, the guest sleeps, so a
# guest left running costs its neighbours nothing. A guest saved while it
# waits (the benchmark's parked template) goes on waiting in each restored
# domain, whose relative xenstore path is its own.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /etc/nx-modules); do insmod "/mods/$m.ko"; done
echo "nx-guest: up"
until nx-vchan-echo data/nx/p1; do :; done
echo "nx-guest: answered"
exec sleep 2147483647
