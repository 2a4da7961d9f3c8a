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
    case "$R" in
      *"\"id\":$SEQ,"* | *"\"id\":$SEQ}"*) return 0 ;;
    esac
  done
}

esc() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | tr -d '\r\n'; }

respond() {
  printf '{"t":"reply","id":%s,"body":{"status":%s,"headers":{"content-type":"text/plain"},"body":"%s\\n"}}\n' "$1" "$2" "$(esc "$3")" >&3
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
    out="$out$(printf '%s' "$R" | sed -n 's/.*"kind":"\([a-z_]*\)","reason":"\(.*\)"}$/denied (\1): \2/p'); "
  done
  # A good call still goes through afterwards.
  call 4 check '{"token":"none"}'
  out="${out}then a good call: $R"
  respond "$1" 200 "$out"
}

echo "web: $BANNER"
while next; do
  id=$(printf '%s' "$LINE" | sed -n 's/^{"t":"call","op":"request","id":\([0-9]*\),"body":.*/\1/p')
  [ -n "$id" ] || continue
  path=$(printf '%s' "$LINE" | sed -n 's/.*"path":"\([^"]*\)".*/\1/p')
  case "$path" in
    /) respond "$id" 200 "$BANNER: POST /orders?item=book&quantity=2 and GET /orders/1 with the header 'Authorization: Bearer demo-token'"; continue ;;
    /probe) probe "$id"; continue ;;
  esac
  token=$(printf '%s' "$LINE" | sed -n 's/.*"authorization":"Bearer \([^"]*\)".*/\1/p')
  call 4 check "{\"token\":\"$(esc "$token" | cut -c1-256)\"}"
  user=$(printf '%s' "$R" | sed -n 's/.*"body":{"user":"\([^"]*\)"}.*/\1/p')
  if [ -z "$user" ]; then
    respond "$id" 401 "who are you? send 'Authorization: Bearer <token>'"
    continue
  fi
  # Forward the request with the caller's name; a client cannot set that header itself.
  req=$(printf '%s' "$LINE" | sed 's/^{"t":"call","op":"request","id":[0-9]*,"body":\(.*\)}$/\1/; s/,"x-mcl-user":"[^"]*"//g; s/"x-mcl-user":"[^"]*",\{0,1\}//g')
  req=$(printf '%s' "$req" | sed "s/\"headers\":{}/\"headers\":{\"x-mcl-user\":\"$user\"}/; t; s/\"headers\":{/\"headers\":{\"x-mcl-user\":\"$user\",/")
  call 5 request "$req"
  case "$R" in
    *'"t":"reply"'*) printf '{"t":"reply","id":%s,"body":%s\n' "$id" "$(printf '%s' "$R" | sed 's/^{"t":"reply","id":[0-9]*,"body":\(.*\)$/\1/')" >&3 ;;
    *) respond "$id" 502 "the handler failed: $R" ;;
  esac
done
