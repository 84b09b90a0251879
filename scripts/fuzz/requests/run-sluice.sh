#!/bin/sh
# Usage: run-sluice.sh binary|deno HTTP_PORT TARGET_PORT ADMIN_PORT RECORD_FILE LOG_FILE [extra sluice flags...]
# Starts sluice with the recorder app in the background; prints sluice's PID.
cd "$(dirname "$0")/../../.."
target=$1 http=$2 tport=$3 admin=$4 rec=$5 log=$6; shift 6
if [ "$target" = binary ]; then cmd="dist/sluice"; else cmd="node_modules/.bin/deno run --allow-all --unstable-net --unstable-no-legacy-abort src/main.ts"; fi
RECORD_FILE=$rec setsid $cmd --http-host 127.0.0.1 --http-port $http --target-port $tport --admin-listen 127.0.0.1:$admin "$@" -- python3 scripts/fuzz/requests/recorder.py > $log 2>&1 < /dev/null &
echo $!
