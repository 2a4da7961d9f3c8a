#!/bin/sh
# The front end: `POST /order` with a JSON order is placed with payments;
# anything else is 404. The framing is mcl-msg's, the broker's guest library.

. mcl-msg

http() {
  mcl_field "$MCL_BODY" method method
  mcl_field "$MCL_BODY" path path
  if [ "$method" != POST ] || [ "$path" != /order ]; then
    mcl_reply '{"status":404,"headers":{"content-type":"text/plain"},"body":"not found\n"}'
    return
  fi
  mcl_field "$MCL_BODY" body order
  if mcl_call orders place "$order"; then
    mcl_str "$MCL_REPLY" receipt
    mcl_reply "{\"status\":200,\"headers\":{\"content-type\":\"application/json\"},\"body\":$receipt}"
  else
    mcl_reply '{"status":502,"headers":{"content-type":"text/plain"},"body":"the order was not placed\n"}'
  fi
}

mcl_serve http http
