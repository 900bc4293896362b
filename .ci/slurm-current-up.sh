#!/usr/bin/env bash
# A current Slurm (Debian 13's 24.11) beside the Debian 12 one of .ci/slurm-up.sh, so the Slurm
# tests also run against what clusters run today. On a Debian 12 machine it lives in a chroot
# built with mmdebstrap from the mirror this machine's apt already uses (about 30 s, once; kept
# in $BASE/root for the next start). Its daemons listen on ports 7817/7818 (the 22.05 cluster
# uses 6817/6818), so both can be up at once; it never touches /etc/slurm of the host.
#
# Use it by putting $BASE/bin first on PATH: wrappers there run the chroot's Slurm commands.
# Jobs run inside the chroot and see the host's files at the same paths through bind mounts
# (/tmp, the checkout, the Python install and virtualenv, /dev/shm). Its state and logs, the
# jobcomp log included, are in $BASE (SLURM_BASE for the tests). Stop: .ci/slurm-current-down.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${SLURM_CURRENT_BASE:-/tmp/sstl-slurm-current}
R=$BASE/root
HOST=$(hostname -s)
NCPU=${NCPU:-$(nproc)}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3 )}
# what jobs must see at the same paths as the host: the test folders, the checkout, the Python
# that runs Snakemake and sstl (its install and its virtualenv)
BIND="/tmp $PWD $("$PY" -c 'import sys; print(sys.base_prefix, sys.prefix)') ${EXTRA_BIND:-}"
for d in $BIND; do
  case $d in
    /|/usr|/bin|/sbin|/lib|/lib64|/etc|/var)
      echo "cannot bind $d into the chroot (it would hide the chroot's own $d): the Python" \
        "that runs the tests ($PY) must not be a system install; use one from pyenv or" \
        "uv (or set PYTHON=)" >&2
      exit 1 ;;
  esac
done
# the shared libraries the host's Python and its packages load, and git for the startup log
LIBS=libffi8,libssl3t64,libsqlite3-0,libbz2-1.0,liblzma5,zlib1g,libreadline8t64,libncursesw6
LIBS=$LIBS,libuuid1,libexpat1,libgomp1,libstdc++6,git

if [ -s "$BASE/run/slurmctld.pid" ] && kill -0 "$(cat "$BASE/run/slurmctld.pid")" 2>/dev/null \
   && "$BASE/bin/sinfo" -h -N -n "$HOST" -p cpu -o %T 2>/dev/null | grep -qx idle; then
  echo "slurm (current) already up"; exit 0
fi

if [ ! -x "$R/usr/sbin/slurmctld" ]; then
  command -v mmdebstrap >/dev/null || DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends mmdebstrap >/dev/null
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
  if findmnt -rn -o TARGET | grep -q "^$R/"; then
    echo "$R has mounts but no Slurm: run .ci/slurm-current-down.sh first" >&2; exit 1
  fi
  rm -rf "$R"
  mkdir -p "$BASE"
  mmdebstrap --quiet --variant=apt --include="slurmctld,slurmd,slurm-client,munge,$LIBS" \
    trixie "$R" "deb $mirror trixie main"
fi

for m in proc sys dev dev/pts dev/shm $BIND; do
  m=/${m#/}
  mkdir -p "$R$m"
  mountpoint -q "$R$m" || mount --bind "$m" "$R$m"
done
cp /etc/hosts "$R/etc/hosts"  # the node name must resolve inside (DDP's rendezvous address)

# Fresh state every start: a drained node would otherwise stay drained.
rm -rf "$BASE"/{run,log,spool,dev}
mkdir -p "$BASE"/{run,log,spool/ctld,spool/d,dev,bin}
ln -s /dev/null "$BASE/dev/gpu0"  # GRES needs device files, or slurmd drains the node
ln -s /dev/null "$BASE/dev/gpu1"
MEM=$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) - 1024 ))
cat > "$R/etc/slurm/slurm.conf" <<CONF
ClusterName=sstl-ci-current
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=7817
SlurmdPort=7818
StateSaveLocation=$BASE/spool/ctld
SlurmdSpoolDir=$BASE/spool/d
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
# finished jobs stay visible to squeue long enough for Snakemake's status polling
MinJobAge=300
KillWait=5
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$BASE/log/jobcomp.txt
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${NCPU} RealMemory=${MEM} Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
PartitionName=gpu Nodes=${HOST} Default=NO MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
echo "NodeName=${HOST} Name=gpu File=$BASE/dev/gpu[0-1]" > "$R/etc/slurm/gres.conf"
# 24.11's slurmd refuses to start without a cgroup filesystem unless told not to use one
echo "CgroupPlugin=disabled" > "$R/etc/slurm/cgroup.conf"

# munge of the chroot: its own key and socket (/run of the chroot), apart from the host's
chroot "$R" /bin/bash -euc '
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  fi
  install -d -o munge -g munge -m 0755 /run/munge
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || runuser -u munge -- /usr/sbin/munged
  munge -n | unmunge >/dev/null'
chroot "$R" /usr/sbin/slurmctld
chroot "$R" /usr/sbin/slurmd

# host-side commands: the chroot's Slurm, run in the caller's folder with the caller's environment
for c in sbatch srun salloc squeue sinfo scontrol scancel sacct sacctmgr sshare; do
  cat > "$BASE/bin/$c" <<WRAP
#!/bin/bash
exec chroot $R /usr/bin/env -C "\$PWD" PATH="/usr/bin:/usr/sbin:\$PATH" /usr/bin/$c "\$@"
WRAP
  chmod +x "$BASE/bin/$c"
done

st=
for _ in $(seq 120); do
  st=$("$BASE/bin/sinfo" -h -N -n "$HOST" -p cpu -o %T 2>/dev/null || true)
  [ "$st" = idle ] && break
  sleep 0.5
done
if [ "$st" != idle ]; then
  echo "slurm (current) node state is '$st' after 60 s" >&2
  tail -n 30 "$BASE/log/slurmctld.log" "$BASE/log/slurmd.log" >&2 || true
  exit 1
fi
"$BASE/bin/sinfo" --version
"$BASE/bin/sinfo"
