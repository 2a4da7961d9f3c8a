#!/bin/sh
# The application server: places and looks up orders (protocol Orders),
# keeping them in the database and auditing every order placed.

MAX="${MCL_PARAM_MAX_QUANTITY:-10}"
exec 3<>/dev/mcl/orders 4<>/dev/mcl/db 5<>/dev/mcl/audit
SEQ=0

str() {
  _p="\"$1\":\""
  case "$2" in *"$_p"*) V=${2#*"$_p"}; V=${V%%\"*} ;; *) V="" ;; esac
}
num() {
  _p="\"$1\":"
  case "$2" in *"$_p"*) V=${2#*"$_p"}; V=${V%%[!0-9]*} ;; *) V="" ;; esac
}

next() {
  while :; do
    if IFS= read -r LINE <&3; then return 0; fi
    sleep 0.2
  done
}

# db OP BODY: one call to the database; its answer (reply, error or denied) ends up in R.
db() {
  SEQ=$((SEQ + 1))
  printf '{"t":"call","op":"%s","id":%d,"body":%s}\n' "$1" "$SEQ" "$2" >&4
  while :; do
    if ! IFS= read -r R <&4; then sleep 0.1; continue; fi
    case "$R" in *"\"id\":$SEQ,"* | *"\"id\":$SEQ}"*) return 0 ;; esac
  done
}

audit() {
  printf '{"t":"send","op":"line","body":{"level":"info","message":"%s"}}\n' "$1" >&5
}

echo "app: at most $MAX of an item per order"
while next; do
  case "$LINE" in '{"t":"call",'*) ;; *) continue ;; esac
  str op "$LINE"; op=$V
  num id "$LINE"; id=$V
  case "$op" in
    place)
      str user "$LINE"; user=$V
      str item "$LINE"; item=$V
      num quantity "$LINE"; qty=${V:-0}
      if [ "$qty" -gt "$MAX" ]; then
        printf '{"t":"error","id":%s,"error":"quantity %s is over the limit of %s"}\n' "$id" "$qty" "$MAX" >&3
        continue
      fi
      db get '{"key":"seq"}'
      str value "$R"; n=$(( ${V:-0} + 1 ))
      db put "{\"key\":\"seq\",\"value\":\"$n\"}"
      db put "{\"key\":\"order:$n\",\"value\":\"$user|$item|$qty\"}"
      case "$R" in
        *'"ok":true'*)
          audit "order $n placed by $user: $qty x $item"
          printf '{"t":"reply","id":%s,"body":{"id":"%s"}}\n' "$id" "$n" >&3 ;;
        *)
          printf '{"t":"error","id":%s,"error":"the database refused the order"}\n' "$id" >&3 ;;
      esac
      ;;
    lookup)
      body=${LINE#*\"body\":}
      str id "$body"; ref=$V
      db get "{\"key\":\"order:$ref\"}"
      str value "$R"
      if [ -n "$V" ]; then
        u=${V%%|*}; rest=${V#*|}; i=${rest%%|*}; q=${rest#*|}
        printf '{"t":"reply","id":%s,"body":{"found":{"user":"%s","item":"%s","quantity":%s}}}\n' "$id" "$u" "$i" "$q" >&3
      else
        printf '{"t":"reply","id":%s,"body":"missing"}\n' "$id" >&3
      fi
      ;;
  esac
done
