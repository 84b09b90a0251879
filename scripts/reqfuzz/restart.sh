#!/bin/sh
# Restarts both experiment instances: binary on 20001 (app 20002, admin 20003), deno on 20011.
cd "$(dirname "$0")"
for t in b d; do [ -f /tmp/rf-$t.pid ] && ./stop-sluice.sh $(cat /tmp/rf-$t.pid); : > /tmp/rf-$t.rec; done
./run-sluice.sh binary 20001 20002 20003 /tmp/rf-b.rec /tmp/rf-b.log "$@" > /tmp/rf-b.pid
./run-sluice.sh deno 20011 20012 20013 /tmp/rf-d.rec /tmp/rf-d.log "$@" > /tmp/rf-d.pid
for i in $(seq 1 100); do grep -q '"event":"ready"' /tmp/rf-b.log && grep -q '"event":"ready"' /tmp/rf-d.log && break; sleep 0.2; done
echo "binary $(cat /tmp/rf-b.pid) deno $(cat /tmp/rf-d.pid)"
