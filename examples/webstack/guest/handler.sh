#!/bin/sh
# Turns HTTP requests (std.http.Http) into application calls (Orders):
#   GET  /orders/<id>                     look an order up
#   POST /orders?item=<item>&quantity=<n>  place an order for the caller
# The caller's name comes from the web front end in the x-mcl-user header.
#
# The framing is mcl-msg's, the broker's guest library (see its header).

. mcl-msg

# query PATH NAME VAR: VAR is the value of NAME in the query string of PATH (letters, digits and '-').
query() {
  case "$1" in *[?\&]"$2="*) _v=${1#*[?\&]"$2="}; _v=${_v%%[!A-Za-z0-9-]*} ;; *) _v="" ;; esac
  eval "$3=\$_v"
}

# respond STATUS JSON: answers the request with the JSON text given as the body.
respond() {
  mcl_str "$2
" text
  mcl_reply "{\"status\":$1,\"headers\":{\"content-type\":\"application/json\"},\"body\":$text}"
}

request() {
  mcl_field "$MCL_BODY" method method
  mcl_field "$MCL_BODY" path path
  mcl_field "$MCL_BODY" x-mcl-user user
  case "$method $path" in
    "GET /orders/"*)
      ref=${path#/orders/}
      case "$ref" in '' | *[!0-9]*) respond 400 '{"error":"an order id is a number"}'; return ;; esac
      if ! mcl_call app lookup "{\"id\":\"$ref\"}"; then
        respond 502 '{"error":"the application failed"}'
        return
      fi
      case "$MCL_REPLY" in
        *'"found":'*) found=${MCL_REPLY#*\"found\":}; respond 200 "${found%\}}" ;;
        *) respond 404 "{\"error\":\"no order $ref\"}" ;;
      esac
      ;;
    "POST /orders"*)
      query "$path" item item
      query "$path" quantity qty
      case "$qty" in *[!0-9]*) qty=0 ;; esac
      mcl_str "$user" name
      mcl_call app place "{\"user\":$name,\"item\":\"$item\",\"quantity\":${qty:-0}}"
      case $? in
        0) respond 201 "$MCL_REPLY" ;;
        1) respond 422 "{\"error\":\"$MCL_ERROR\"}" ;;
        2) respond 400 "{\"error\":\"$MCL_ERROR\"}" ;;
        *) respond 502 '{"error":"the application failed"}' ;;
      esac
      ;;
    *)
      mcl_str "no route for $method $path" text
      respond 404 "{\"error\":$text}"
      ;;
  esac
}

echo "handler ${MCL_INSTANCE:-} #${MCL_CLONE:-0}: ready"
mcl_serve api request
