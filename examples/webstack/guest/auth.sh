#!/bin/sh
# Checks bearer tokens (protocol Auth) against the `tokens` parameter (a JSON
# map from token to user) and records every check with the audit collector.

TOKENS="${MCL_PARAM_TOKENS:-{\}}"
exec 3<>/dev/mcl/auth 4<>/dev/mcl/audit

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

audit() {
  printf '{"t":"send","op":"line","body":{"level":"%s","message":"%s"}}\n' "$1" "$2" >&4
}

echo "auth: ready"
while next; do
  case "$LINE" in '{"t":"call","op":"check",'*) ;; *) continue ;; esac
  num id "$LINE"; id=$V
  str token "$LINE"; token=$V
  user=""
  # Only plain token characters take part in the lookup, so a token cannot inject a pattern.
  case "$token" in
    '' | *[!A-Za-z0-9._~+-]*) ;;
    *) str "$token" "$TOKENS"; user=$V ;;
  esac
  if [ -n "$user" ]; then
    printf '{"t":"reply","id":%s,"body":{"user":"%s"}}\n' "$id" "$user" >&3
    audit info "token accepted for $user"
  else
    printf '{"t":"reply","id":%s,"body":"anonymous"}\n' "$id" >&3
    audit warn "unknown token refused"
  fi
done
