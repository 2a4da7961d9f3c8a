#!/bin/sh
# Checks bearer tokens (protocol Auth) against the `tokens` parameter and
# records every check with the audit collector.

TOKENS="${MCL_PARAM_TOKENS:-{\}}"
exec 3<>/dev/mcl/auth 4<>/dev/mcl/audit

next() {
  while :; do
    if IFS= read -r LINE <&3; then return 0; fi
    sleep 0.2
  done
}

audit() {
  printf '{"t":"send","op":"line","body":{"level":"%s","message":"%s"}}\n' "$1" "$2" >&4
}

echo "auth: $(printf '%s' "$TOKENS" | grep -o '":"' | wc -l) token(s) loaded"
while next; do
  id=$(printf '%s' "$LINE" | sed -n 's/^{"t":"call","op":"check","id":\([0-9]*\),"body":.*/\1/p')
  [ -n "$id" ] || continue
  # Only plain token characters take part in the lookup, so a token cannot inject a pattern.
  token=$(printf '%s' "$LINE" | sed -n 's/.*"token":"\([A-Za-z0-9._~+-]*\)".*/\1/p')
  user=""
  [ -n "$token" ] && user=$(printf '%s' "$TOKENS" | sed -n "s/.*\"$token\":\"\([a-z][a-z0-9_-]*\)\".*/\1/p")
  if [ -n "$user" ]; then
    printf '{"t":"reply","id":%s,"body":{"user":"%s"}}\n' "$id" "$user" >&3
    audit info "token accepted for $user"
  else
    printf '{"t":"reply","id":%s,"body":"anonymous"}\n' "$id" >&3
    audit warn "unknown token refused"
  fi
done
