#!/bin/sh
# Turns HTTP requests (std.http.Http) into application calls (Orders):
#   GET  /orders/<id>                     look an order up
#   POST /orders?item=<item>&quantity=<n>  place an order for the caller
# The caller's name comes from the web front end in the x-mcl-user header.

exec 3<>/dev/mcl/api 4<>/dev/mcl/app
SEQ=0

next() {
  while :; do
    if IFS= read -r LINE <&3; then return 0; fi
    sleep 0.2
  done
}

# app OP BODY: one call to the application; its reply line ends up in R.
app() {
  SEQ=$((SEQ + 1))
  printf '{"t":"call","op":"%s","id":%d,"body":%s}\n' "$1" "$SEQ" "$2" >&4
  while :; do
    if ! IFS= read -r R <&4; then sleep 0.1; continue; fi
    case "$R" in
      *"\"id\":$SEQ,"* | *"\"id\":$SEQ}"*) return 0 ;;
    esac
  done
}

# respond ID STATUS TEXT: an HTTP response whose body is TEXT (JSON-escaped here).
respond() {
  body=$(printf '%s' "$3" | sed 's/\\/\\\\/g; s/"/\\"/g' | tr -d '\r\n')
  printf '{"t":"reply","id":%s,"body":{"status":%s,"headers":{"content-type":"application/json"},"body":"%s\\n"}}\n' "$1" "$2" "$body" >&3
}

param() { printf '%s' "$1" | sed -n "s/.*[?&]$2=\([A-Za-z0-9-]*\).*/\1/p"; }

echo "handler ${MCL_INSTANCE:-}: ready"
while next; do
  id=$(printf '%s' "$LINE" | sed -n 's/^{"t":"call","op":"request","id":\([0-9]*\),"body":.*/\1/p')
  [ -n "$id" ] || continue
  method=$(printf '%s' "$LINE" | sed -n 's/.*"method":"\([A-Z]*\)".*/\1/p')
  path=$(printf '%s' "$LINE" | sed -n 's/.*"path":"\([^"]*\)".*/\1/p')
  user=$(printf '%s' "$LINE" | sed -n 's/.*"x-mcl-user":"\([^"]*\)".*/\1/p')
  case "$method $path" in
    "GET /orders/"*)
      ref=${path#/orders/}
      case "$ref" in '' | *[!0-9]*) respond "$id" 400 '{"error":"an order id is a number"}'; continue ;; esac
      app lookup "{\"id\":\"$ref\"}"
      case "$R" in
        *'"found":'*) respond "$id" 200 "$(printf '%s' "$R" | sed 's/.*"found":\({[^}]*}\).*/\1/')" ;;
        *'"t":"reply"'*) respond "$id" 404 "{\"error\":\"no order $ref\"}" ;;
        *) respond "$id" 502 "{\"error\":\"the application failed\"}" ;;
      esac
      ;;
    "POST /orders"*)
      item=$(param "$path" item)
      qty=$(param "$path" quantity)
      app place "{\"user\":\"$user\",\"item\":\"$item\",\"quantity\":${qty:-0}}"
      case "$R" in
        *'"t":"reply"'*) respond "$id" 201 "$(printf '%s' "$R" | sed 's/.*"body":\({[^}]*}\).*/\1/')" ;;
        *'"t":"error"'*) respond "$id" 422 "{\"error\":\"$(printf '%s' "$R" | sed -n 's/.*"error":"\([^"]*\)".*/\1/p')\"}" ;;
        *'"t":"denied"'*) respond "$id" 400 "{\"error\":\"$(printf '%s' "$R" | sed -n 's/.*"reason":"\([^"]*\)".*/\1/p')\"}" ;;
        *) respond "$id" 502 '{"error":"the application failed"}' ;;
      esac
      ;;
    *)
      respond "$id" 404 "{\"error\":\"no route for $method $path\"}"
      ;;
  esac
done
