#!/bin/sh
# A trap that looks like a small web server. Every connection gets a fresh
# copy-on-write clone of this guest, so whatever a visitor does here (POST
# /upload leaves a file behind) is gone for the next one: GET /pwned says
# whether this clone has been written to. Each request is reported to the
# recorder, which is the only thing the trap may talk to.

PERSONA="${MCL_PARAM_PERSONA:-Apache/2.4.41 (Ubuntu)}"
exec 3<>/dev/mcl/http 4<>/dev/mcl/recorder

str() {
  _p="\"$1\":\""
  case "$2" in *"$_p"*) V=${2#*"$_p"}; V=${V%%\"*} ;; *) V="" ;; esac
}
num() {
  _p="\"$1\":"
  case "$2" in *"$_p"*) V=${2#*"$_p"}; V=${V%%[!0-9]*} ;; *) V="" ;; esac
}
esc() { V=${1//\\/\\\\}; V=${V//\"/\\\"}; }

next() {
  while :; do
    if IFS= read -r LINE <&3; then return 0; fi
    sleep 0.2
  done
}

respond() {
  esc "$3"
  printf '{"t":"reply","id":%s,"body":{"status":%s,"headers":{"server":"%s","content-type":"text/html"},"body":"%s\\n"}}\n' "$1" "$2" "$PERSONA" "$V" >&3
}

record() {
  esc "$1"
  printf '{"t":"send","op":"line","body":{"level":"warn","message":"%s","fields":{"clone":"%s"}}}\n' "$V" "${MCL_CLONE:-?}" >&4
}

echo "trap: up as $PERSONA"
while next; do
  case "$LINE" in '{"t":"call","op":"request",'*) ;; *) continue ;; esac
  num id "$LINE"; id=$V
  str method "$LINE"; method=$V
  str path "$LINE"; path=$V
  str user-agent "$LINE"; agent=$V
  record "$method $path from $agent"
  case "$method $path" in
    "POST /upload"*)
      echo "visitor was here" >/tmp/pwned
      respond "$id" 200 "<html><body>upload stored</body></html>" ;;
    "GET /pwned")
      if [ -f /tmp/pwned ]; then respond "$id" 200 "yes: this clone was written to"; else respond "$id" 200 "no: a fresh clone"; fi ;;
    "GET /")
      respond "$id" 200 "<html><body><h1>It works!</h1></body></html>" ;;
    *)
      respond "$id" 404 "<html><body><h1>Not Found</h1></body></html>" ;;
  esac
done
