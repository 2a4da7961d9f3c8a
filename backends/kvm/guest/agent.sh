#!/bin/sh
# The mcl guest agent (busybox sh). Installed as /usr/sbin/mcl-agent and run by
# busybox init (see /etc/inittab in the image):
#   mcl-agent setup   once at boot: mounts, kernel modules
#   mcl-agent serve   serves the control port (respawned by init if it dies)
#
# The control protocol is line based; spec/guest.md is its reference. Values
# that can hold arbitrary bytes arrive base64-encoded. The agent starts the
# program it is given and reports its exit; it never restarts it (the host's
# restart policy decides that).

PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

log() { echo "mcl-agent: $*" >/dev/console; }

setup() {
  mount -t devtmpfs devtmpfs /dev 2>/dev/null
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mount -t tmpfs -o mode=1777 tmpfs /tmp
  mount -t tmpfs -o mode=755 tmpfs /run
  mkdir -p /dev/pts /dev/mcl /run/mcl
  mount -t devpts devpts /dev/pts 2>/dev/null
  while read -r m; do
    [ -n "$m" ] || continue
    insmod "/lib/mcl-modules/$m.ko" 2>/dev/null || log "insmod $m failed"
  done </etc/mcl/modules
  hostname mcl-template
  # Reading /dev/urandom before the CRNG is initialised makes Linux (5.18 and
  # later) gather timer jitter until it is, so the template is saved with an
  # initialised CRNG and a clone's reseed (below, on `seed`) cannot fail with
  # ENODATA. With RDRAND (TCG's -cpu max) it is initialised at boot already.
  head -c 1 /dev/urandom >/dev/null
  ifconfig lo 127.0.0.1 up 2>/dev/null
}

# Prints the /dev node of the virtio-serial port named $1, fails when there is none.
port_dev() {
  for p in /sys/class/virtio-ports/*; do
    [ -r "$p/name" ] || continue
    read -r n <"$p/name" || true
    if [ "$n" = "$1" ]; then
      echo "/dev/${p##*/}"
      return 0
    fi
  done
  return 1
}

# On Xen (the kernel command line carries mcl.xen=1) there is no virtio-serial
# device: every port is a vchan to dom0, carried by a FIFO pair PORT.in/PORT.out
# that mcl-msg's FIFO mode reads, and mcl-vchan (the static vchan client) copies
# between the pair and dom0's vchan server of the slot (spec/xen.md). It is
# started again whenever it ends: dom0 closed the vchan, or the guest was
# restored under a new domain id and its server is found at the new
# /local/domain/<id>/data/mcl/p<slot> (a relative xenstore path).
on_xen() { grep -q 'mcl\.xen=1' /proc/cmdline 2>/dev/null; }

# vchan_port SLOT FIFO-PREFIX: FIFOs opened read-write so neither side blocks opening them.
vchan_port() {
  mkfifo "$2.in" "$2.out" 2>/dev/null
  (
    while :; do
      mcl-vchan "data/mcl/p$1" <>"$2.out" 1<>"$2.in" 2>/dev/null
      sleep 0.2
    done
  ) </dev/null >/dev/null 2>&1 3>&- 4>&- &
}

dec() { printf '%s' "$1" | base64 -d; }
enc() { printf '%s' "$1" | base64 | tr -d '\n'; }
say() { echo "$*" >&4; }

# Remembers the first failure of an identity; reported on commit/start.
fail() {
  log "$1"
  [ -n "$err" ] || err=$1
}

link_port() {
  case "$2" in
    '' | */* | .*) fail "bad port name $2"; return ;;
  esac
  if on_xen; then
    vchan_port "$1" "/dev/mcl/$2"
  elif dev=$(port_dev "slot$1"); then
    ln -sf "$dev" "/dev/mcl/$2"
  else
    fail "no virtio-serial port for slot $1 ($2)"
  fi
}

write_file() {
  f=$(dec "$1")
  case "$f" in
    /*) ;;
    *) fail "file path $f is not absolute"; return ;;
  esac
  mkdir -p "${f%/*}" 2>/dev/null
  if printf '%s' "$3" | base64 -d >"$f"; then
    chmod "$2" "$f" || fail "chmod $2 $f failed"
  else
    fail "cannot write $f"
  fi
}

# start N ARGV...: runs the program in the background with stdin from
# /dev/null, output on the console, and the control port closed (a program
# must not be able to speak for the agent); reports `exit PID STATUS` when it ends.
start_program() {
  n=$1
  shift
  if [ -n "$err" ]; then
    say "error $n $(enc "$err")"
    err=
    return
  fi
  if [ $# -eq 0 ]; then
    say "error $n $(enc 'no program argv')"
    return
  fi
  rm -f /run/mcl/program.pid
  (
    cd / || exit 1
    "$@" </dev/null 3>&- 4>&- &
    p=$!
    echo "$p" >/run/mcl/program.pid.tmp && mv /run/mcl/program.pid.tmp /run/mcl/program.pid
    wait "$p"
    echo "exit $p $?" >&4
  ) &
  i=0
  while [ ! -s /run/mcl/program.pid ] && [ $i -lt 500 ]; do
    sleep 0.01
    i=$((i + 1))
  done
  read -r pid </run/mcl/program.pid || pid=0
  say "started $n $pid"
}

serve() {
  ctl=
  i=0
  if on_xen; then
    # A respawned agent finds the pair (and the loop feeding it) already there.
    [ -p /run/mcl/control.in ] || vchan_port 0 /run/mcl/control
    exec 3<>/run/mcl/control.in 4<>/run/mcl/control.out
    log "control port: vchan slot 0"
  fi
  on_xen || until ctl=$(port_dev control) && [ -e "$ctl" ]; do
    i=$((i + 1))
    if [ $i -gt 1000 ]; then
      log "no virtio-serial port named control; is virtio_console loaded?"
      sleep 5
      exit 1
    fi
    sleep 0.01
  done
  if [ -n "$ctl" ]; then
    exec 3<>"$ctl" 4>&3
    log "control port $ctl"
  fi
  say "ready boot"
  err=
  idle=0
  set --
  while :; do
    cmd=
    if ! IFS=' ' read -r cmd a b c <&3; then
      # End of file: no host is connected to the control port (a fresh clone
      # before the host attached, or the host went away). Poll until one is:
      # quickly at first, since a fresh clone's host attaches within
      # milliseconds, then backing off so an abandoned guest stays idle.
      if [ -z "$cmd" ]; then
        case $idle in
          ? | 1?) sleep 0.01 ;;
          2?) sleep 0.05 ;;
          3?) sleep 0.2 ;;
          *) sleep 1 ;;
        esac
        idle=$((idle + 1))
        continue
      fi
    fi
    idle=0
    case "$cmd" in
      hello) say "ready $a" ;;
      ping) say "pong $a" ;;
      reset) set -- ; err= ;;
      instance)
        MCL_INSTANCE=$(dec "$a")
        MCL_CLONE=$b
        export MCL_INSTANCE MCL_CLONE
        ;;
      hostname) hostname "$(dec "$a")" || fail "cannot set hostname" ;;
      seed)
        # Mixed into the kernel's input pool; also kept for programs that want their own.
        printf '%s' "$a" | base64 -d >/dev/urandom || fail "cannot write /dev/urandom"
        (umask 077 && printf '%s' "$a" | base64 -d >/run/mcl/seed)
        # A write only mixes into the pool; the CRNG every clone inherited from
        # the template keeps serving the same bytes until the kernel reseeds on
        # its own schedule. mcl-reseed reseeds it now (RNDRESEEDCRNG) from the
        # pool that holds the seed; it exits with the errno when it cannot.
        # Images for architectures without the helper only mix (spec/guest.md).
        if [ -x /bin/mcl-reseed ]; then
          /bin/mcl-reseed || fail "cannot reseed the kernel CRNG (mcl-reseed: errno $?)"
        fi
        ;;
      port) link_port "$a" "$b" ;;
      file) write_file "$a" "$b" "$c" ;;
      env)
        kv=$(dec "$a")
        case "$kv" in
          [A-Za-z_]*=*) export "$kv" ;;
          *) fail "bad environment entry" ;;
        esac
        ;;
      arg) set -- "$@" "$(dec "$a")" ;;
      commit)
        if [ -n "$err" ]; then say "error $a $(enc "$err")"; err=; else say "committed $a"; fi
        ;;
      start) start_program "$a" "$@" ;;
      info)
        h=$(hostname)
        r=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
        s=$(sha256sum /run/mcl/seed 2>/dev/null | cut -c1-16)
        say "info $a $(enc "$h") $r ${s:--}"
        ;;
      poweroff) poweroff -f ;;
      '') ;;
      *) say "error $a $(enc "unknown command $cmd")" ;;
    esac
  done
}

case "$1" in
  setup) setup ;;
  serve) serve ;;
  *) echo "usage: mcl-agent setup|serve" >&2; exit 2 ;;
esac
