#!/bin/sh
# Payments: charges the card of an order with the payment processor (the
# `psp` egress: the broker sends the request and checks the answer), then
# has a confirmation mailed. Only the charge's id goes back to the front.

. mcl-msg

place() {
  mcl_field "$MCL_BODY" email email
  mcl_field "$MCL_BODY" item item
  mcl_field "$MCL_BODY" card card
  mcl_str "{\"card\":\"$card\",\"item\":\"$item\"}" body
  if ! mcl_call psp request "{\"method\":\"POST\",\"path\":\"/v1/charges\",\"headers\":{\"content-type\":\"application/json\"},\"body\":$body}"; then
    mcl_error "the payment processor did not answer"
    return
  fi
  mcl_field "$MCL_REPLY" status status
  if [ "$status" != 200 ]; then
    mcl_error "the payment processor answered $status"
    return
  fi
  mcl_str "$email" e
  mcl_str "$item" i
  mcl_send mail confirm "{\"email\":$e,\"item\":$i}"
  mcl_reply "{\"charge\":\"ch-$(date +%s)\"}"
}

mcl_serve orders place
