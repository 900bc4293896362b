#!/usr/bin/env bash
# Start a throw-away single-node Slurm cluster on this machine for the tests and CI:
# partitions `cpu` (default) and `gpu` (two fake GPUs as GRES, device files linked to /dev/null),
# no accounting (the workflow's Slurm profile asks squeue for job status).
# Debian's slurm packages (22.05 on bookworm). Idempotent; stop with .ci/slurm-down.sh.
set -euo pipefail
BASE=${SLURM_BASE:-/tmp/sstl-slurm}
NCPU=${NCPU:-$(nproc)}
HOST=$(hostname -s)

if ! dpkg -s slurmctld slurmd slurm-client munge >/dev/null 2>&1; then
  apt-get -o DPkg::Lock::Timeout=120 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq \
    --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

# Already up (a previous call)? Then there is nothing to do.
if [ -s "$BASE/run/slurmctld.pid" ] && kill -0 "$(cat "$BASE/run/slurmctld.pid")" 2>/dev/null \
   && sinfo -h -N -n "$HOST" -p cpu -o %T 2>/dev/null | grep -qx idle; then
  echo "slurm already up"; exit 0
fi

# Fresh state every start: a drained node would otherwise stay drained.
rm -rf "$BASE"
mkdir -p "$BASE"/{etc,run,log,spool/ctld,spool/d,dev,munge}
chown munge:munge "$BASE/munge"
ln -s /dev/null "$BASE/dev/gpu0"   # GRES needs device files, or slurmd drains the node
ln -s /dev/null "$BASE/dev/gpu1"
MEM=$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) - 1024 ))

cat > "$BASE/etc/slurm.conf" <<CONF
ClusterName=sstl-ci
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
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
echo "NodeName=${HOST} Name=gpu File=$BASE/dev/gpu[0-1]" > "$BASE/etc/gres.conf"
# The jobstep plugin strips SLURM_* (SLURM_CONF too) before its inner srun: the config must
# sit at the compiled-in default path.
mkdir -p /etc/slurm
ln -sfn "$BASE/etc/slurm.conf" /etc/slurm/slurm.conf
ln -sfn "$BASE/etc/gres.conf" /etc/slurm/gres.conf

if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null || /usr/sbin/create-munge-key -f
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged --pid-file="$BASE/munge/munged.pid" \
    --log-file="$BASE/munge/munged.log"
fi
munge -n | unmunge >/dev/null

slurmctld
slurmd
for _ in $(seq 120); do
  st=$(sinfo -h -N -n "$HOST" -p cpu -o %T 2>/dev/null || true)
  [ "$st" = idle ] && break
  sleep 0.5
done
if [ "$st" != idle ]; then
  echo "slurm node state is '$st' after 60 s" >&2
  scontrol show node "$HOST" >&2 || true
  tail -n 30 "$BASE/log/slurmctld.log" "$BASE/log/slurmd.log" >&2 || true
  exit 1
fi
sinfo
