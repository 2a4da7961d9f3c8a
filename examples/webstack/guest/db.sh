#!/bin/sh
# The database: a key-value store (std.kv.Kv) kept in the guest's own memory.
#
# Every data port is /dev/mcl/<port>; the broker sends one JSON frame per line
# and checks every frame we answer against the channel's schema, so this
# script only ever sees well-formed calls it may serve. Frames are taken apart
# with the shell's own pattern expansion: under emulation every fork of a
# tool such as sed costs tens of milliseconds.

PORT=/dev/mcl/kv
STORE=/tmp/kv
MAX_KEYS="${MCL_PARAM_MAX_KEYS:-1000}"
mkdir -p "$STORE"

# str KEY TEXT: V is the first "KEY":"..." string in TEXT (up to the next quote).
str() {
  _p="\"$1\":\""
  case "$2" in *"$_p"*) V=${2#*"$_p"}; V=${V%%\"*} ;; *) V="" ;; esac
}
# num KEY TEXT: V is the first "KEY":<digits> in TEXT.
num() {
  _p="\"$1\":"
  case "$2" in *"$_p"*) V=${2#*"$_p"}; V=${V%%[!0-9]*} ;; *) V="" ;; esac
}

# Reads one line into LINE. Until the broker has connected to the port, reads
# see end-of-file, so we wait instead of giving up.
next() {
  while :; do
    if IFS= read -r LINE <&3; then return 0; fi
    sleep 0.2
  done
}

exec 3<>"$PORT"
echo "db: serving $PORT (at most $MAX_KEYS keys)"
count=0
while next; do
  # Calls arrive as {"t":"call","op":"<op>","id":<n>,"body":{"key":"...",...}}.
  case "$LINE" in '{"t":"call",'*) ;; *) continue ;; esac
  str op "$LINE"; op=$V
  num id "$LINE"; id=$V
  str key "$LINE"; key=$V
  # Keys may contain '/', which file names cannot.
  f="$STORE/${key//\//%2F}"
  case "$op" in
    get)
      if [ -f "$f" ]; then
        IFS= read -r value <"$f"
        printf '{"t":"reply","id":%s,"body":{"hit":{"key":"%s","value":"%s"}}}\n' "$id" "$key" "$value" >&3
      else
        printf '{"t":"reply","id":%s,"body":"miss"}\n' "$id" >&3
      fi
      ;;
    put)
      # The value stays in its JSON-escaped form, so it comes back byte for byte.
      value=${LINE#*\"value\":\"}; value=${value%\"\}\}}
      if [ ! -f "$f" ] && [ "$count" -ge "$MAX_KEYS" ]; then
        printf '{"t":"error","id":%s,"error":"the store is full (%s keys)"}\n' "$id" "$MAX_KEYS" >&3
      else
        [ -f "$f" ] || count=$((count + 1))
        printf '%s\n' "$value" >"$f"
        printf '{"t":"reply","id":%s,"body":{"ok":true}}\n' "$id" >&3
      fi
      ;;
    delete)
      [ -f "$f" ] && count=$((count - 1))
      rm -f "$f"
      printf '{"t":"reply","id":%s,"body":{"ok":true}}\n' "$id" >&3
      ;;
    *)
      printf '{"t":"error","id":%s,"error":"unknown operation %s"}\n' "$id" "$op" >&3
      ;;
  esac
done
