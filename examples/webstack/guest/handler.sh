#!/bin/sh
# Turns HTTP requests (std.http.Http) into application calls (Orders):
#   GET  /orders/<id>                     look an order up
#   POST /orders?item=<item>&quantity=<n>  place an order for the caller
# The caller's name comes from the web front end in the x-mcl-user header.

exec 3<>/dev/mcl/api 4<>/dev/mcl/app
SEQ=0

str() {
  _p="\"$1\":\""
  case "$2" in *"$_p"*) V=${2#*"$_p"}; V=${V%%\"*} ;; *) V="" ;; esac
}
num() {
  _p="\"$1\":"
  case "$2" in *"$_p"*) V=${2#*"$_p"}; V=${V%%[!0-9]*} ;; *) V="" ;; esac
}
# query NAME PATH: V is the value of NAME in the query string (letters, digits and '-').
query() {
  case "$2" in *[?\&]"$1="*) V=${2#*[?\&]"$1="}; V=${V%%[!A-Za-z0-9-]*} ;; *) V="" ;; esac
}

next() {
  while :; do
    if IFS= read -r LINE <&3; then return 0; fi
    sleep 0.2
  done
}

# app OP BODY: one call to the application; its answer ends up in R.
app() {
  SEQ=$((SEQ + 1))
  printf '{"t":"call","op":"%s","id":%d,"body":%s}\n' "$1" "$SEQ" "$2" >&4
  while :; do
    if ! IFS= read -r R <&4; then sleep 0.1; continue; fi
    case "$R" in *"\"id\":$SEQ,"* | *"\"id\":$SEQ}"*) return 0 ;; esac
  done
}

# respond ID STATUS JSON: an HTTP response whose body is the JSON text given.
respond() {
  _b=${3//\\/\\\\}; _b=${_b//\"/\\\"}
  printf '{"t":"reply","id":%s,"body":{"status":%s,"headers":{"content-type":"application/json"},"body":"%s\\n"}}\n' "$1" "$2" "$_b" >&3
}

echo "handler ${MCL_INSTANCE:-} #${MCL_CLONE:-0}: ready"
while next; do
  case "$LINE" in '{"t":"call","op":"request",'*) ;; *) continue ;; esac
  num id "$LINE"; id=$V
  str method "$LINE"; method=$V
  str path "$LINE"; path=$V
  str x-mcl-user "$LINE"; user=$V
  case "$method $path" in
    "GET /orders/"*)
      ref=${path#/orders/}
      case "$ref" in '' | *[!0-9]*) respond "$id" 400 '{"error":"an order id is a number"}'; continue ;; esac
      app lookup "{\"id\":\"$ref\"}"
      case "$R" in
        *'"found":'*) found=${R#*\"found\":}; respond "$id" 200 "${found%%\}*}}" ;;
        *'"t":"reply"'*) respond "$id" 404 "{\"error\":\"no order $ref\"}" ;;
        *) respond "$id" 502 '{"error":"the application failed"}' ;;
      esac
      ;;
    "POST /orders"*)
      query item "$path"; item=$V
      query quantity "$path"; qty=${V:-0}
      case "$qty" in *[!0-9]*) qty=0 ;; esac
      app place "{\"user\":\"$user\",\"item\":\"$item\",\"quantity\":$qty}"
      case "$R" in
        *'"t":"reply"'*) b=${R#*\"body\":}; respond "$id" 201 "${b%\}}" ;;
        *'"t":"error"'*) str error "$R"; respond "$id" 422 "{\"error\":\"$V\"}" ;;
        *'"t":"denied"'*) str reason "$R"; respond "$id" 400 "{\"error\":\"$V\"}" ;;
        *) respond "$id" 502 '{"error":"the application failed"}' ;;
      esac
      ;;
    *)
      respond "$id" 404 "{\"error\":\"no route for $method $path\"}"
      ;;
  esac
done
