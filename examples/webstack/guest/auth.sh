#!/bin/sh
# Checks bearer tokens (protocol Auth) against the `tokens` parameter (a JSON
# map from token to user) and records every check with the audit collector.
#
# The framing is mcl-msg's, the broker's guest library (see its header).

. mcl-msg

TOKENS="${MCL_PARAM_TOKENS:-{\}}"

# audit LEVEL TEXT: one line to the audit collector.
audit() {
  mcl_str "$2" text
  mcl_send audit line "{\"level\":\"$1\",\"message\":$text}"
}

check() {
  mcl_field "$MCL_BODY" token token
  user=""
  # Only plain token characters take part in the lookup, so a token cannot inject a pattern.
  case "$token" in
    '' | *[!A-Za-z0-9._~+-]*) ;;
    *) mcl_field "$TOKENS" "$token" user ;;
  esac
  if [ -n "$user" ]; then
    mcl_str "$user" name
    mcl_reply "{\"user\":$name}"
    audit info "token accepted for $user"
  else
    mcl_reply '"anonymous"'
    audit warn "unknown token refused"
  fi
}

echo "auth: ready"
mcl_serve auth check
