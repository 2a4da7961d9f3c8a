#!/bin/sh
# The web front end: the only component that faces the outside (std.http.Http
# exposed on a host TCP port). It asks `auth` who is calling and passes the
# request on to a handler with the caller's name attached.
#
# GET /probe shows the broker at work: it sends the token store a line that is
# not JSON, a token longer than the type allows, and an operation the
# protocol does not have. The broker refuses all three (they appear in
# `mclc status`), while the channel goes on working for good calls.

BANNER="${MCL_PARAM_BANNER:-mcl webstack}"
exec 3<>/dev/mcl/http 4<>/dev/mcl/auth 5<>/dev/mcl/handler
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

# call FD OP BODY: one call on a require port; the answer (reply, error or denied) ends up in R.
call() {
  SEQ=$((SEQ + 1))
  printf '{"t":"call","op":"%s","id":%d,"body":%s}\n' "$2" "$SEQ" "$3" >&"$1"
  while :; do
    if ! IFS= read -r R <&"$1"; then sleep 0.1; continue; fi
    case "$R" in *"\"id\":$SEQ,"* | *"\"id\":$SEQ}"*) return 0 ;; esac
  done
}

# esc TEXT: V is TEXT escaped for a JSON string.
esc() { V=${1//\\/\\\\}; V=${V//\"/\\\"}; }

respond() {
  esc "$3"
  printf '{"t":"reply","id":%s,"body":{"status":%s,"headers":{"content-type":"text/plain"},"body":"%s\\n"}}\n' "$1" "$2" "$V" >&3
}

probe() {
  out=""
  printf 'this line is not JSON\n' >&4
  long=$(printf '%0300d' 0)
  printf '{"t":"call","op":"check","id":"p2","body":{"token":"%s"}}\n' "$long" >&4
  printf '{"t":"call","op":"revoke_all","id":"p3","body":{}}\n' >&4
  n=0
  while [ $n -lt 3 ] && IFS= read -r -t 3 R <&4; do
    n=$((n + 1))
    str kind "$R"; kind=$V
    reason=${R#*\"reason\":\"}; reason=${reason%\"\}}
    out="${out}denied ($kind): ${reason//\\\"/\"}; "
  done
  # A good call still goes through afterwards.
  call 4 check '{"token":"none"}'
  respond "$1" 200 "${out}then a good call: $R"
}

echo "web: $BANNER"
while next; do
  case "$LINE" in '{"t":"call","op":"request",'*) ;; *) continue ;; esac
  num id "$LINE"; id=$V
  str path "$LINE"; path=$V
  case "$path" in
    /) respond "$id" 200 "$BANNER: POST /orders?item=book&quantity=2 and GET /orders/1 with the header 'Authorization: Bearer demo-token'"; continue ;;
    /probe) probe "$id"; continue ;;
  esac
  str authorization "$LINE"; token=${V#Bearer }
  case "$token" in *[!A-Za-z0-9._~+-]*) token="" ;; esac
  call 4 check "{\"token\":\"$token\"}"
  case "$R" in *'"body":{"user":"'*) str user "$R"; user=$V ;; *) user="" ;; esac
  if [ -z "$user" ]; then
    respond "$id" 401 "who are you? send 'Authorization: Bearer <token>'"
    continue
  fi
  # Forward the request with the caller's name; a client cannot set that header itself.
  req=${LINE#*\"body\":}; req=${req%\}}
  case "$req" in *'"x-mcl-user"'*) respond "$id" 400 "the x-mcl-user header is reserved"; continue ;; esac
  case "$req" in
    *'"headers":{}'*) req="${req%%\"headers\":\{\}*}\"headers\":{\"x-mcl-user\":\"$user\"}${req#*\"headers\":\{\}}" ;;
    *) req="${req%%\"headers\":\{*}\"headers\":{\"x-mcl-user\":\"$user\",${req#*\"headers\":\{}" ;;
  esac
  call 5 request "$req"
  case "$R" in
    *'"t":"reply"'*) printf '{"t":"reply","id":%s,"body":%s\n' "$id" "${R#*\"body\":}" >&3 ;;
    *) respond "$id" 502 "the handler failed: $R" ;;
  esac
done
