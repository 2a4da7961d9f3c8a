#!/bin/sh
# The application server: places and looks up orders (protocol Orders),
# keeping them in the database and auditing every order placed.
#
# The framing is mcl-msg's, the broker's guest library (see its header).

. mcl-msg

MAX="${MCL_PARAM_MAX_QUANTITY:-10}"

place() {
  mcl_field "$MCL_BODY" user user
  mcl_field "$MCL_BODY" item item
  mcl_field "$MCL_BODY" quantity qty
  if [ "${qty:-0}" -gt "$MAX" ]; then
    mcl_error "quantity $qty is over the limit of $MAX"
    return
  fi
  mcl_call db get '{"key":"seq"}'
  mcl_field "$MCL_REPLY" value n
  n=$((${n:-0} + 1))
  mcl_call db put "{\"key\":\"seq\",\"value\":\"$n\"}"
  mcl_str "$user|$item|$qty" order
  mcl_call db put "{\"key\":\"order:$n\",\"value\":$order}"
  case "$MCL_REPLY" in
    *'"ok":true'*)
      mcl_str "order $n placed by $user: $qty x $item" line
      mcl_send audit line "{\"level\":\"info\",\"message\":$line}"
      mcl_reply "{\"id\":\"$n\"}"
      ;;
    *) mcl_error "the database refused the order" ;;
  esac
}

lookup() {
  mcl_field "$MCL_BODY" id ref
  mcl_call db get "{\"key\":\"order:$ref\"}"
  if mcl_field "$MCL_REPLY" value order; then
    u=${order%%|*}; rest=${order#*|}; i=${rest%%|*}; q=${rest#*|}
    mcl_str "$u" u
    mcl_str "$i" i
    mcl_reply "{\"found\":{\"user\":$u,\"item\":$i,\"quantity\":$q}}"
  else
    mcl_reply '"missing"'
  fi
}

orders() {
  case "$MCL_OP" in
    place) place ;;
    lookup) lookup ;;
  esac
}

echo "app: at most $MAX of an item per order"
mcl_serve orders orders
