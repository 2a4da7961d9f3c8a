#!/bin/sh
. mcl-msg
pong() {
  mcl_reply "$MCL_BODY"
}
mcl_serve echo pong
