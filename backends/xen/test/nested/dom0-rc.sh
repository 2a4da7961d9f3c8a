#!/bin/sh
# System start of the nested-Xen test bed's dom0 (run once by busybox init,
# before the control agent): file systems, the Xen and device modules, the
# loopback and the user-mode network's address, and the Xen daemons a PV dom0
# needs to create guests (xenstored, xen-init-dom0, xenconsoled). Every line
# it prints starts with "nx-dom0:" so the host can pick them out of the
# serial log, which Xen's own messages share.
export PATH=/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin
say() { echo "nx-dom0: $*"; }
mount -t proc proc /proc
say "rc start at $(cut -d" " -f1 /proc/uptime) s"
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t tmpfs run /run
mount -t tmpfs -o mode=1777 tmp /tmp
mkdir -p /run/xen /run/lock /var/lib/xen/dump /var/log/xen/console /root
# In dependency order (the host resolved it from the kernel's modules.dep).
while read -r m; do
  [ -n "$m" ] && { insmod "/lib/nx-modules/$m.ko" || say "insmod $m failed"; }
done < /etc/nx/modules
mount -t xenfs xenfs /proc/xen || say "xenfs not mounted"
ip link set lo up
# QEMU's user-mode network: the host forwards 127.0.0.1 ports to this address (spec/xen-testing.md).
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 || say "no network device"
# xenstored daemonises; xen-init-dom0 needs it, and writes dom0's entries and the default cpupool.
xenstored --pid-file /run/xenstored.pid || say "xenstored failed"
n=0; while [ ! -s /run/xenstored.pid ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
xen-init-dom0 >/dev/null 2>&1 || say "xen-init-dom0 failed"
xenconsoled --log=guest --log-dir=/var/log/xen/console --pid-file=/run/xenconsoled.pid || say "xenconsoled failed"
say "xen daemons up at $(cut -d" " -f1 /proc/uptime) s"
