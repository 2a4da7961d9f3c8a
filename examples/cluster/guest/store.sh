#!/bin/sh
# An organisation's private result store (std.kv.Kv), kept in the guest's own
# memory. Only its organisation's jobs are wired to it.

PORT=/dev/mcl/kv
STORE=/tmp/kv
MAX_KEYS="${MCL_PARAM_MAX_KEYS:-1000}"
mkdir -p "$STORE"

# Reads one line from fd 3 into LINE. Until the broker has connected to the
# port, reads see end-of-file, so we wait instead of giving up.
next() {
  while :; do
    if IFS= read -r LINE <&3; then return 0; fi
    sleep 0.2
  done
}

# The file of a key: keys may contain '/', which file names cannot.
keyfile() { printf '%s/%s' "$STORE" "$(printf '%s' "$1" | sed 's#%#%25#g; s#/#%2F#g')"; }

exec 3<>"$PORT"
echo "store: serving $PORT (at most $MAX_KEYS keys)"
while next; do
  # The broker writes calls as {"t":"call","op":"<op>","id":<n>,"body":{...}}.
  op=$(printf '%s' "$LINE" | sed -n 's/^{"t":"call","op":"\([a-z_]*\)","id":\([0-9]*\),"body":.*/\1/p')
  id=$(printf '%s' "$LINE" | sed -n 's/^{"t":"call","op":"[a-z_]*","id":\([0-9]*\),"body":.*/\1/p')
  [ -n "$id" ] || continue
  key=$(printf '%s' "$LINE" | sed -n 's/.*"body":{"key":"\([^"]*\)".*/\1/p')
  f=$(keyfile "$key")
  case "$op" in
    get)
      if [ -f "$f" ]; then
        printf '{"t":"reply","id":%s,"body":{"hit":{"key":"%s","value":"%s"}}}\n' "$id" "$key" "$(cat "$f")" >&3
      else
        printf '{"t":"reply","id":%s,"body":"miss"}\n' "$id" >&3
      fi
      ;;
    put)
      # The value stays in its JSON-escaped form, so it comes back byte for byte.
      value=$(printf '%s' "$LINE" | sed -n 's/.*"value":"\(.*\)"}}$/\1/p')
      count=$(ls "$STORE" | wc -l)
      if [ ! -f "$f" ] && [ "$count" -ge "$MAX_KEYS" ]; then
        printf '{"t":"error","id":%s,"error":"the store is full (%s keys)"}\n' "$id" "$MAX_KEYS" >&3
      else
        printf '%s' "$value" >"$f"
        printf '{"t":"reply","id":%s,"body":{"ok":true}}\n' "$id" >&3
      fi
      ;;
    delete)
      rm -f "$f"
      printf '{"t":"reply","id":%s,"body":{"ok":true}}\n' "$id" >&3
      ;;
    *)
      printf '{"t":"error","id":%s,"error":"unknown operation %s"}\n' "$id" "$op" >&3
      ;;
  esac
done
