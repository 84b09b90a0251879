#!/bin/sh
# Usage: stop-sluice.sh PID: SIGTERM, wait up to 15 s, then SIGKILL its process group (setsid made it a leader).
pid=$1
kill -TERM "$pid" 2>/dev/null
for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
echo "sluice $pid did not stop in 15 s: killing its group" >&2
kill -KILL -- "-$pid" 2>/dev/null
