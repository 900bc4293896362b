#!/usr/bin/env bash
# Stop the Slurm of .ci/slurm-current-up.sh: its jobs, daemons (by pid file) and bind mounts.
# The chroot stays in $BASE/root for the next start (PURGE=1 removes it once nothing is mounted).
BASE=${SLURM_CURRENT_BASE:-/tmp/sstl-slurm-current}
R=$BASE/root
stop() {
  [ -s "$1" ] || return 0
  pid=$(cat "$1")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$1"
}
[ -x "$BASE/bin/scancel" ] && "$BASE/bin/scancel" --user="$(id -un)" 2>/dev/null
stop "$BASE/run/slurmd.pid"
stop "$BASE/run/slurmctld.pid"
if [ -d "$R/run/munge" ]; then
  for p in $(pgrep -x munged); do  # the chroot's munged: the one whose root is the chroot
    [ "$(readlink "/proc/$p/root")" = "$R" ] && kill -TERM "$p"
  done
fi
# deepest first, so /dev/pts goes before /dev
findmnt -rn -o TARGET | grep "^$R/" | sort -r | while read -r m; do umount "$m" || umount -l "$m"; done
if findmnt -rn -o TARGET | grep -q "^$R/"; then
  echo "mounts left under $R: not removing anything" >&2; exit 1
fi
if [ "${PURGE:-0}" = 1 ]; then rm -rf "$R"; fi
echo "slurm (current) down"
