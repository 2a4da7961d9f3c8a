#!/bin/sh
# A trap that looks like a small web server. Every connection gets a fresh
# copy-on-write clone of this guest, so whatever a visitor does here (POST
# /upload leaves a file behind) is gone for the next one: GET /pwned says
# whether this clone has been written to. Each request is reported to the
# recorder, which is the only thing the trap may talk to.
#
# The framing is mcl-msg's, the broker's guest library (see its header).

. mcl-msg

PERSONA="${MCL_PARAM_PERSONA:-Apache/2.4.41 (Ubuntu)}"
mcl_str "$PERSONA" SERVER

# respond STATUS HTML: answers the request as the persona would.
respond() {
  mcl_str "$2
" text
  mcl_reply "{\"status\":$1,\"headers\":{\"server\":$SERVER,\"content-type\":\"text/html\"},\"body\":$text}"
}

# record TEXT: tells the recorder what this clone saw.
record() {
  mcl_str "$1" text
  mcl_send recorder line "{\"level\":\"warn\",\"message\":$text,\"fields\":{\"clone\":\"${MCL_CLONE:-?}\"}}"
}

request() {
  mcl_field "$MCL_BODY" method method
  mcl_field "$MCL_BODY" path path
  mcl_field "$MCL_BODY" user-agent agent
  record "$method $path from $agent"
  case "$method $path" in
    "POST /upload"*)
      echo "visitor was here" >/tmp/pwned
      respond 200 "<html><body>upload stored</body></html>" ;;
    "GET /pwned")
      if [ -f /tmp/pwned ]; then respond 200 "yes: this clone was written to"; else respond 200 "no: a fresh clone"; fi ;;
    "GET /")
      respond 200 "<html><body><h1>It works!</h1></body></html>" ;;
    *)
      respond 404 "<html><body><h1>Not Found</h1></body></html>" ;;
  esac
}

echo "trap: up as $PERSONA"
mcl_serve http request
