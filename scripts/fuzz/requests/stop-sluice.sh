#!/bin/sh
# Usage: stop-sluice.sh PID: SIGTERM, wait up to 15 s, then SIGKILL its process group (setsid made it a leader).
# Only a sluice run-sluice.sh started: a PID file left from an earlier run may name another process by now.
pid=$1
case "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" in
  *sluice*--admin-listen*recorder.py*|*src/main.ts*--admin-listen*recorder.py*) ;;
  *) echo "stop-sluice: $pid is not a sluice started by run-sluice.sh (anymore): left alone" >&2; exit 0 ;;
esac
kill -TERM "$pid" 2>/dev/null
for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
echo "sluice $pid did not stop in 15 s: killing its group" >&2
kill -KILL -- "-$pid" 2>/dev/null
