#!/bin/sh
# The mailer: each confirmation is one SMTP conversation with the relay
# through the `mail` egress. The guest has no network device: it asks the
# broker to open connection N (`opened`), writes the conversation as base64
# chunks (`data`) and ends it (`closed`); the broker opens the TCP connection
# to the relay and enforces the egress's limits. The relay's replies come back
# as `write` notifications, which this sender does not wait for (it pipelines
# the conversation, as SMTP PIPELINING allows).

. mcl-msg

N=0

confirm() {
  mcl_field "$MCL_BODY" email to
  mcl_field "$MCL_BODY" item item
  N=$((N + 1))
  msg=$(printf 'HELO shop.example.com\r\nMAIL FROM:<orders@shop.example.com>\r\nRCPT TO:<%s>\r\nDATA\r\nSubject: your order\r\n\r\nThank you for ordering %s.\r\n.\r\nQUIT\r\n' "$to" "$item" | base64 | tr -d '\n')
  mcl_send smtp opened "{\"conn\":$N}"
  mcl_send smtp data "{\"conn\":$N,\"data\":\"$msg\"}"
  mcl_send smtp closed "{\"conn\":$N}"
}

mcl_serve mail confirm
