#!/usr/bin/env bash
# Stop the cluster .ci/slurm-up.sh started (by pid file) and remove its /etc/slurm links.
BASE=${SLURM_BASE:-/tmp/sstl-slurm}
stop() {
  [ -s "$1" ] || return 0
  pid=$(cat "$1")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$1"
}
scancel --user="$(id -un)" 2>/dev/null || true
stop "$BASE/run/slurmd.pid"
stop "$BASE/run/slurmctld.pid"
stop "$BASE/munge/munged.pid"
for f in slurm.conf gres.conf; do
  if [ -L "/etc/slurm/$f" ] && [ "$(readlink "/etc/slurm/$f")" = "$BASE/etc/$f" ]; then
    rm -f "/etc/slurm/$f"
  fi
done
echo "slurm down"
