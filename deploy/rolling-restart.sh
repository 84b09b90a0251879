#!/bin/sh
# Deploys new app code behind sluice: sends it SIGUSR2 (a rolling restart, README
# "Lifecycle"), waits for the result on its admin listener's /metrics, and says it.
#
#   deploy/rolling-restart.sh [--admin URL] [--timeout SECONDS] [-- COMMAND...]
#
#   --admin URL        sluice's admin listener (default http://127.0.0.1:9000)
#   --timeout SECONDS  longest wait for the result (default 300: more than --ready-timeout
#                      + --drain-timeout + --stop-timeout)
#   COMMAND            what sends sluice SIGUSR2 (default, for deploy/systemd:
#                      systemctl kill --kill-who=main --signal=SIGUSR2 sluice); for Docker,
#                      -- docker kill --signal=USR2 CONTAINER
#
# Exits 0 when the rolling restart succeeded (the new child serves), 1 when it failed or was
# skipped (sluice's log says why: the old child goes on serving, unless the new one exited
# after it took over), 2 when it cannot tell
# (a usage error, /metrics unreadable, the command failed, sluice went away, the timeout).
# Needs curl. Start one deploy at a time: sluice runs SIGUSR2s one after the other.
set -u

admin=http://127.0.0.1:9000
timeout=300
while [ $# -gt 0 ]; do
  case $1 in
    --admin) [ $# -ge 2 ] || { echo "rolling-restart.sh: --admin needs a URL" >&2; exit 2; }; admin=$2; shift 2 ;;
    --timeout) [ $# -ge 2 ] || { echo "rolling-restart.sh: --timeout needs a number of seconds" >&2; exit 2; }; timeout=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "rolling-restart.sh: unknown argument: $1 (see the comment at the top of this file)" >&2; exit 2 ;;
  esac
done
case $timeout in
  '' | *[!0-9]*) echo "rolling-restart.sh: --timeout must be a whole number of seconds, not \"$timeout\"" >&2; exit 2 ;;
esac
[ $# -gt 0 ] || set -- systemctl kill --kill-who=main --signal=SIGUSR2 sluice

# "result count" for each result of sluice_rolling_restarts_total, sorted.
results() {
  # Straight to sluice: an http_proxy in the environment would not know its admin address.
  metrics=$(curl -fsS --noproxy "*" --max-time 5 "$admin/metrics") || return 1
  printf '%s\n' "$metrics" | sed -n 's/^sluice_rolling_restarts_total{result="\([a-z]*\)"} \([0-9]*\)$/\1 \2/p' | sort
}

before=$(results) || { echo "rolling-restart.sh: cannot read $admin/metrics (is --admin sluice's admin-listen?)" >&2; exit 2; }
[ -n "$before" ] || { echo "rolling-restart.sh: $admin/metrics has no sluice_rolling_restarts_total: is it sluice?" >&2; exit 2; }
"$@" || { echo "rolling-restart.sh: \"$*\" failed; nothing was sent" >&2; exit 2; }

deadline=$(($(date +%s) + timeout))
while :; do
  now=$(results) || { echo "rolling-restart.sh: $admin/metrics stopped answering: sluice is stopping or gone" >&2; exit 2; }
  [ "$now" = "$before" ] || break
  [ "$(date +%s)" -lt "$deadline" ] || { echo "rolling-restart.sh: no result within ${timeout}s; sluice's log says where it is" >&2; exit 2; }
  sleep 1
done

# The results whose count went up (a line of $now that $before does not have).
went_up=$(printf '%s\n' "$now" | while read -r result count; do
  printf '%s\n' "$before" | grep -qx "$result $count" || printf '%s ' "$result"
done)
case " $went_up" in
  " ok ") echo "rolling restart ok: the new child serves"; exit 0 ;;
  *) echo "rolling restart: ${went_up% } (sluice's log, event \"rolling-restart\", says why)" >&2; exit 1 ;;
esac
