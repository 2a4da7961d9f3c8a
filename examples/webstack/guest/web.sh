#!/bin/sh
# The web front end: the only component that faces the outside (std.http.Http
# exposed on a host TCP port). It asks `auth` who is calling and passes the
# request on to a handler with the caller's name attached.
#
# GET /probe shows the broker at work: it sends the token store a line that is
# not JSON, a token longer than the type allows, and an operation the
# protocol does not have. The broker refuses all three (they appear in
# `mclc status`), while the channel goes on working for good calls.
#
# The framing is mcl-msg's, the broker's guest library (see its header).

. mcl-msg

BANNER="${MCL_PARAM_BANNER:-mcl webstack}"

# respond STATUS TEXT: answers the request with TEXT as a plain-text line.
respond() {
  mcl_str "$2
" text
  mcl_reply "{\"status\":$1,\"headers\":{\"content-type\":\"text/plain\"},\"body\":$text}"
}

# The library only writes good frames, so the bad ones are written to the port by hand.
probe() {
  mcl_port auth
  printf 'this line is not JSON\n' >&"$MCL_OUT"
  long=$(printf '%0300d' 0)
  printf '{"t":"call","op":"check","id":"p2","body":{"token":"%s"}}\n' "$long" >&"$MCL_OUT"
  printf '{"t":"call","op":"revoke_all","id":"p3","body":{}}\n' >&"$MCL_OUT"
  out=""
  n=0
  while [ $n -lt 3 ] && IFS= read -r -t 3 denial <&"$MCL_IN"; do
    n=$((n + 1))
    mcl_field "$denial" kind kind
    mcl_field "$denial" reason reason
    out="${out}denied ($kind): $reason; "
  done
  # A good call still goes through afterwards.
  mcl_call auth check '{"token":"none"}'
  respond 200 "${out}then a good call: ${MCL_FRAME:-$MCL_ERROR}"
}

request() {
  mcl_field "$MCL_BODY" path path
  case "$path" in
    /) respond 200 "$BANNER: POST /orders?item=book&quantity=2 and GET /orders/1 with the header 'Authorization: Bearer demo-token'"; return ;;
    /probe) probe; return ;;
  esac
  mcl_field "$MCL_BODY" authorization token; token=${token#Bearer }
  case "$token" in *[!A-Za-z0-9._~+-]*) token="" ;; esac
  user=""
  mcl_call auth check "{\"token\":\"$token\"}" && mcl_field "$MCL_REPLY" user user
  if [ -z "$user" ]; then
    respond 401 "who are you? send 'Authorization: Bearer <token>'"
    return
  fi
  # Forward the request with the caller's name; a client cannot set that header itself.
  req=$MCL_BODY
  case "$req" in *'"x-mcl-user"'*) respond 400 "the x-mcl-user header is reserved"; return ;; esac
  case "$req" in
    *'"headers":{}'*) req="${req%%\"headers\":\{\}*}\"headers\":{\"x-mcl-user\":\"$user\"}${req#*\"headers\":\{\}}" ;;
    *) req="${req%%\"headers\":\{*}\"headers\":{\"x-mcl-user\":\"$user\",${req#*\"headers\":\{}" ;;
  esac
  if mcl_call handler request "$req"; then
    mcl_reply "$MCL_REPLY"
  else
    respond 502 "the handler failed: ${MCL_FRAME:-$MCL_ERROR}"
  fi
}

echo "web: $BANNER"
mcl_serve http request
