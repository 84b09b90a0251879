#!/bin/sh
# Usage: [BASE_PORT=20000] restart.sh [extra sluice flags...]
# (Re)starts both targets with recorder.py as the child: the binary on BASE_PORT+1 (app +2,
# admin +3), Deno on BASE_PORT+11 (app +12, admin +13); records, logs and PIDs in /tmp/rf-[bd].*.
cd "$(dirname "$0")"
base=${BASE_PORT:-20000}
for t in b d; do [ -f /tmp/rf-$t.pid ] && ./stop-sluice.sh "$(cat /tmp/rf-$t.pid)"; : > /tmp/rf-$t.rec; done
./run-sluice.sh binary $((base + 1)) $((base + 2)) $((base + 3)) /tmp/rf-b.rec /tmp/rf-b.log "$@" > /tmp/rf-b.pid
./run-sluice.sh deno $((base + 11)) $((base + 12)) $((base + 13)) /tmp/rf-d.rec /tmp/rf-d.log "$@" > /tmp/rf-d.pid
for i in $(seq 1 100); do grep -q '"event":"ready"' /tmp/rf-b.log && grep -q '"event":"ready"' /tmp/rf-d.log && break; sleep 0.2; done
echo "binary $(cat /tmp/rf-b.pid) deno $(cat /tmp/rf-d.pid)"
