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
#
# Transports. By default every port is a virtio-serial port (KVM). With
# `mcl.transport=tcp` on the kernel command line (a KubeVirt machine, see
# spec/kubevirt.md) the port of slot N is a TCP listener on port
# `mcl.port_base` + N of the guest's network interface, for the slots listed
# in `mcl.slots`, held by the agent from before any program runs, serving only
# a peer whose first line is `auth <the guest's token>` (the broker), and
# bridged line by line to a FIFO pair PORT.in/PORT.out: the form mcl-msg
# already opens under MCL_DEV_DIR. Slot 0 is the control port.

PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

log() { echo "mcl-agent: $*" >/dev/console; }

# Directories and the kernel command line; tests run the agent's functions on a
# host with these pointed elsewhere.
MCL_RUN=${MCL_RUN:-/run/mcl}
MCL_PORTS=${MCL_PORTS:-/dev/mcl}
MCL_CMDLINE=${MCL_CMDLINE:-/proc/cmdline}
MCL_AGENT=${MCL_AGENT:-/usr/sbin/mcl-agent}
# The shell that runs the agent for each accepted connection (tests on a host: `busybox sh`).
MCL_SH=${MCL_SH:-sh}
# The hello responder (image/hello.ts), absent from images of architectures it
# is not generated for; empty turns it off.
MCL_HELLO=${MCL_HELLO-/bin/mcl-hello}

# cmdline_opt NAME: the value of mcl.NAME= on the kernel command line, empty when absent.
cmdline_opt() {
  for w in $(cat "$MCL_CMDLINE" 2>/dev/null); do
    case "$w" in
      "mcl.$1="*) echo "${w#*=}"; return 0 ;;
    esac
  done
  return 0
}

transport() {
  case "$(cmdline_opt transport)" in
    tcp) echo tcp ;;
    *) echo virtio ;;
  esac
}

# tcp_port SLOT: the TCP port of a slot in TCP mode; fails for a slot the
# command line does not list (the machine's interface admits only those).
tcp_port() {
  base=$(cmdline_opt port_base)
  case "$base" in '' | *[!0-9]*) return 1 ;; esac
  case ",$(cmdline_opt slots)," in
    *",$1,"*) echo $((base + $1)) ;;
    *) return 1 ;;
  esac
}

# tcp_bridge PORT PREFIX: serves TCP port PORT for the FIFO pair PREFIX.in
# (what the peer sends) and PREFIX.out (what the guest side writes), for
# ever. One busybox `nc -ll` holds the listening socket for the bridge's whole
# life (a program of the guest cannot bind the port, even between two
# connections) and runs `tcp_conn` for every connection it accepts. The
# bridge holds both FIFOs open read-write, so, as with a virtio-serial port
# whose host end went away, the guest side never reads end of file when the
# peer goes: it waits for the next connection, and what it writes meanwhile
# waits in the FIFO (at most the pipe's 64 KiB, then the writer blocks).
tcp_bridge() {
  exec 7<>"$2.in" 8<>"$2.out"
  while :; do
    # shellcheck disable=SC2086 # MCL_SH may be a command and its argument
    nc -ll -p "$1" -e $MCL_SH "$MCL_AGENT" conn "$2" 2>/dev/null
    sleep 0.1
  done
}

# The guest's token: learnt from the first peer of the control port that
# presents one (before any program of the guest runs), then required of every
# peer of every port. The broker derives it from its deployment's key and the
# machine's name (spec/kubevirt.md, "Who may connect to a guest's port").
token_ok() {
  case "$1" in
    '' | *[!0-9a-f]*) return 1 ;;
  esac
  [ ${#1} -eq 64 ] || return 1
  if [ ! -s "$MCL_RUN/token" ] && [ "$2" = "$MCL_RUN/ctl" ] && mkdir "$MCL_RUN/token.claim" 2>/dev/null; then
    (umask 077 && echo "$1" >"$MCL_RUN/token.tmp" && mv "$MCL_RUN/token.tmp" "$MCL_RUN/token")
  fi
  read -r want <"$MCL_RUN/token" 2>/dev/null || return 1
  [ "$1" = "$want" ]
}

# tcp_conn PREFIX: one accepted connection (standard input and output are the
# socket; fds 7 and 8 are the FIFO pair, inherited from the bridge). A peer
# whose first line, within 5 s, is not `auth <token>` is dropped without a
# byte of the FIFOs. An authenticated peer replaces the one before it (a
# broker that reconnects after its old connection went silent without a
# reset must not wait for it). Frames are copied as whole lines: a line cut
# short by a dropped connection is discarded, never joined to the next one.
tcp_conn() {
  trap '' PIPE
  IFS=' ' read -t 5 -r w t || exit 0
  [ "$w" = auth ] && token_ok "$t" "$1" || exit 0
  if read -r old <"$1.conn" 2>/dev/null; then
    # shellcheck disable=SC2086 # two pids
    kill $old 2>/dev/null
  fi
  (
    while IFS= read -r l <&8; do printf '%s\n' "$l" || exit 0; done
  ) 7>&- &
  out=$!
  echo "$$ $out" >"$1.conn"
  while IFS= read -r l; do printf '%s\n' "$l" >&7; done 8>&-
  # The peer is gone: the copy towards it stops before it takes another line from the guest.
  kill "$out" 2>/dev/null
  read -r cur <"$1.conn" 2>/dev/null && [ "$cur" = "$$ $out" ] && rm -f "$1.conn"
  exit 0
}

# tcp_port_open SLOT PREFIX: the FIFO pair of a slot and its bridge in the background.
tcp_port_open() {
  p=$(tcp_port "$1") || { fail "slot $1 is not on the kernel command line (mcl.slots)"; return; }
  # Named again (a second identity): its bridge already serves it.
  [ -p "$2.in" ] && [ -p "$2.out" ] && return
  rm -f "$2.in" "$2.out"
  mkfifo -m 600 "$2.in" "$2.out" || { fail "cannot make the FIFOs of $2"; return; }
  tcp_bridge "$p" "$2" </dev/null >/dev/null 2>&1 &
}

# The network in TCP mode: the machine's one interface, configured by DHCP
# (KubeVirt's masquerade binding serves the guest its address and route).
net_up() {
  ifconfig eth0 up 2>/dev/null || { log "no eth0: is virtio_net in the image's modules?"; return 1; }
  udhcpc -i eth0 -q -n -t 20 -T 1 -s /usr/sbin/mcl-agent >/dev/null 2>&1 || log "no DHCP answer on eth0"
}

# udhcpc's script (it runs this file with the event as $1 and the lease in the environment).
dhcp_event() {
  case "$1" in
    deconfig) ifconfig eth0 0.0.0.0 ;;
    bound | renew)
      ifconfig eth0 "$ip" netmask "${subnet:-255.255.255.0}" up
      for r in $router; do route add default gw "$r" dev eth0 2>/dev/null; break; done
      ;;
  esac
}

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
  if [ "$(transport)" = tcp ]; then
    net_up
  fi
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
  elif [ "$(transport)" = tcp ]; then
    tcp_port_open "$1" "$MCL_PORTS/$2"
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
  rm -f "$MCL_RUN/program.pid"
  (
    cd / || exit 1
    "$@" </dev/null 3>&- 4>&- &
    p=$!
    echo "$p" >"$MCL_RUN/program.pid.tmp" && mv "$MCL_RUN/program.pid.tmp" "$MCL_RUN/program.pid"
    wait "$p"
    echo "exit $p $?" >&4
  ) &
  i=0
  while [ ! -s "$MCL_RUN/program.pid" ] && [ $i -lt 500 ]; do
    sleep 0.01
    i=$((i + 1))
  done
  read -r pid <"$MCL_RUN/program.pid" || pid=0
  : >"$MCL_RUN/identity"
  say "started $n $pid"
}

serve() {
  # A report written while no host is connected is lost, not fatal.
  trap '' PIPE
  if [ "$(transport)" = tcp ]; then
    mkdir -p "$MCL_RUN" "$MCL_PORTS"
    # A respawned agent finds the bridge of the control port still serving it.
    tcp_port_open 0 "$MCL_RUN/ctl"
    [ -z "$err" ] || { log "$err"; sleep 5; exit 1; }
    exec 3<"$MCL_RUN/ctl.in" 4>"$MCL_RUN/ctl.out"
    log "control port tcp $(tcp_port 0)"
  else
    serve_virtio
  fi
  # On a virtio-serial control port the hello responder answers the hellos
  # until the first other line (see next_line). Not on a vchan or TCP bridge:
  # their FIFOs are fed by a loop of the agent's own that wakes up anyway.
  front=
  [ -n "$ctl" ] && [ -n "$MCL_HELLO" ] && [ -x "$MCL_HELLO" ] && front=$MCL_HELLO
  say "ready boot"
  serve_loop
}

serve_virtio() {
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
}

# next_line: the next line of the control port in cmd a b c, split as `read`
# splits it; fails at the end of input. While `front` names the hello
# responder, it reads the port: a clone woken up from the template answers
# the host's hello without the shell running (spec/guest.md, "Waking up").
# The responder hands the first other line over on fd 5, whole (status 3) or
# the part it read (status 1, the rest is still in the port), and the shell
# reads the port itself from then on. Status 2 is the end of input before a
# line: the host went away (a fresh clone's host is connected before it runs),
# so the shell polls and reads the port itself, as it would have, rather than
# start the responder again for every poll. Any other status (the responder
# failed, or could not run) leaves the port to the shell too. No line is
# lost: the responder hands over everything it read of a line it did not
# answer, and a hello whose answer it failed to write is sent again by the
# host, which repeats it until answered.
next_line() {
  [ -n "$front" ] || { IFS=' ' read -r cmd a b c <&3; return; }
  line=$("$front" <&3 5>&1 >&4 2>/dev/null)
  case $? in
    3) ;;
    1) IFS= read -r rest <&3; line=$line$rest ;;
    2) front=; return 1 ;;
    *)
      log "the hello responder failed; the agent answers hellos itself"
      front=
      IFS=' ' read -r cmd a b c <&3
      return
      ;;
  esac
  front=
  IFS=' ' read -r cmd a b c <<EOF
$line
EOF
}

serve_loop() {
  err=
  idle=0
  set --
  while :; do
    cmd=
    if ! next_line; then
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
        (umask 077 && printf '%s' "$a" | base64 -d >"$MCL_RUN/seed")
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
        if [ -n "$err" ]; then say "error $a $(enc "$err")"; err=; else : >"$MCL_RUN/identity"; say "committed $a"; fi
        ;;
      start) start_program "$a" "$@" ;;
      info)
        h=$(hostname)
        r=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
        s=$(sha256sum "$MCL_RUN/seed" 2>/dev/null | cut -c1-16)
        say "info $a $(enc "$h") $r ${s:--}"
        ;;
      # Whether this guest has applied an identity since it booted: a broker
      # that connects to a running guest (it restarted, or its connection
      # dropped) starts the program only where none was started.
      query) if [ -e "$MCL_RUN/identity" ]; then say "identity $a yes"; else say "identity $a no"; fi ;;
      poweroff) poweroff -f ;;
      '') ;;
      *) say "error $a $(enc "unknown command $cmd")" ;;
    esac
  done
}

case "$1" in
  setup) setup ;;
  serve) serve ;;
  conn) tcp_conn "$2" ;;
  deconfig | bound | renew | leasefail | nak) dhcp_event "$1" ;;
  functions) ;;
  *) echo "usage: mcl-agent setup|serve" >&2; exit 2 ;;
esac
