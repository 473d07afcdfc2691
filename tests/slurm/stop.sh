#!/usr/bin/env bash
# tests/slurm/stop.sh - stop exactly the daemons started by tests/slurm/start.sh
# (PIDs recorded in $PIDS_FILE), in reverse start order.
set -uo pipefail
PIDS_FILE=${PIDS_FILE:-/run/climb-test-slurm.pids}
[ -s "$PIDS_FILE" ] || { echo "[local-slurm] nothing to stop ($PIDS_FILE empty/missing)"; exit 0; }

tac "$PIDS_FILE" | while read -r name pid; do
  [ -n "${pid:-}" ] || continue
  if ! kill -0 "$pid" 2>/dev/null; then echo "[local-slurm] $name ($pid) not running"; continue; fi
  # guard against PID reuse: check the executable name
  comm=$(cat /proc/"$pid"/comm 2>/dev/null || true)
  if [ "$comm" != "$name" ]; then echo "[local-slurm] PID $pid is '$comm', not $name - skipping"; continue; fi
  kill -TERM "$pid"
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; echo "[local-slurm] $name ($pid) killed"; else echo "[local-slurm] $name ($pid) stopped"; fi
done
rm -f "$PIDS_FILE"
# slurmctld drops to SlurmUser and cannot unlink its root-owned /run pidfile;
# a stale /run/slurmctld.pid makes `apt-get remove slurmctld` (prerm runs scancel) fail.
for f in /run/slurmctld.pid /run/slurmd.pid; do
  p=$(cat "$f" 2>/dev/null) && ! kill -0 "$p" 2>/dev/null && rm -f "$f"
done
true
