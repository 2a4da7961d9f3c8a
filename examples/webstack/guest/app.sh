#!/bin/sh
# The application server: places and looks up orders (protocol Orders),
# keeping them in the database and auditing every order placed.

MAX="${MCL_PARAM_MAX_QUANTITY:-10}"
exec 3<>/dev/mcl/orders 4<>/dev/mcl/db 5<>/dev/mcl/audit
SEQ=0

next() {
  while :; do
    if IFS= read -r LINE <&3; then return 0; fi
    sleep 0.2
  done
}

# db OP BODY: one call to the database; its reply line ends up in R.
db() {
  SEQ=$((SEQ + 1))
  printf '{"t":"call","op":"%s","id":%d,"body":%s}\n' "$1" "$SEQ" "$2" >&4
  while :; do
    if ! IFS= read -r R <&4; then sleep 0.1; continue; fi
    case "$R" in
      *"\"id\":$SEQ,"* | *"\"id\":$SEQ}"*) return 0 ;;
    esac
  done
}

audit() {
  printf '{"t":"send","op":"line","body":{"level":"info","message":"%s"}}\n' "$1" >&5
}

echo "app: orders up to $MAX per line"
while next; do
  op=$(printf '%s' "$LINE" | sed -n 's/^{"t":"call","op":"\([a-z_]*\)","id":[0-9]*,"body":.*/\1/p')
  id=$(printf '%s' "$LINE" | sed -n 's/^{"t":"call","op":"[a-z_]*","id":\([0-9]*\),"body":.*/\1/p')
  [ -n "$id" ] || continue
  case "$op" in
    place)
      user=$(printf '%s' "$LINE" | sed -n 's/.*"user":"\([^"]*\)".*/\1/p')
      item=$(printf '%s' "$LINE" | sed -n 's/.*"item":"\([^"]*\)".*/\1/p')
      qty=$(printf '%s' "$LINE" | sed -n 's/.*"quantity":\([0-9]*\).*/\1/p')
      if [ "$qty" -gt "$MAX" ]; then
        printf '{"t":"error","id":%s,"error":"quantity %s is over the limit of %s"}\n' "$id" "$qty" "$MAX" >&3
        continue
      fi
      db get '{"key":"seq"}'
      n=$(printf '%s' "$R" | sed -n 's/.*"value":"\([0-9]*\)".*/\1/p')
      n=$(( ${n:-0} + 1 ))
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
      ref=$(printf '%s' "$LINE" | sed -n 's/.*"body":{"id":"\([0-9]*\)".*/\1/p')
      db get "{\"key\":\"order:$ref\"}"
      v=$(printf '%s' "$R" | sed -n 's/.*"value":"\([^"]*\)".*/\1/p')
      if [ -n "$v" ]; then
        IFS='|' read -r u i q <<EOT
$v
EOT
        printf '{"t":"reply","id":%s,"body":{"found":{"user":"%s","item":"%s","quantity":%s}}}\n' "$id" "$u" "$i" "$q" >&3
      else
        printf '{"t":"reply","id":%s,"body":"missing"}\n' "$id" >&3
      fi
      ;;
  esac
done
