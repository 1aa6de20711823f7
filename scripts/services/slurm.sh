#!/usr/bin/env bash
# A throwaway single-node SLURM cluster on this machine for tests (real daemons, no mocks).
#   slurm.sh start <dir>   last stdout line: export SLURM_CONF=<dir>/slurm.conf
#   slurm.sh stop <dir>
# Everything lives under <dir>: slurm.conf, its own munge key and socket, free ports, state, spool and logs,
# so it neither needs nor disturbs a system munged or slurm. Must run as root (slurmd starts jobs as their
# user). Nothing is installed here: missing binaries fail with a one-line reason
# (Debian: apt-get install slurm-wlm munge).
set -euo pipefail

die() { echo "slurm.sh: $*" >&2; exit 1; }
cmd=${1:-}
dir=${2:-}
[[ ($cmd == start || $cmd == stop) && -n $dir ]] || die "usage: slurm.sh start <dir> | stop <dir>"
export PATH=$PATH:/usr/sbin:/sbin # the daemons live in sbin, which a non-login PATH may lack

# alive <pidfile> <name>: its process runs (not a zombie: daemons get reparented to an init that may reap them
# late) and is still <name> (a stale pid file may name a reused pid).
alive() {
  local pid st
  pid=$(cat "$1" 2>/dev/null) && st=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $st == "$pid ($2) "* && ${st##*) } != Z* ]]
}
# stop_pid <pidfile> <name>: TERM, then KILL after 10 s.
stop_pid() {
  if alive "$1" "$2"; then
    local pid
    pid=$(cat "$1")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do alive "$1" "$2" || break; sleep 0.1; done
    alive "$1" "$2" && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$1"
}

stop_all() {
  # Cancel what still runs, or its slurmstepd processes outlive the daemons.
  if alive "$dir/slurmctld.pid" slurmctld; then
    SLURM_CONF=$dir/slurm.conf timeout 10 scancel --user="$(id -un)" 2>/dev/null || true
  fi
  stop_pid "$dir/slurmd.pid" slurmd
  stop_pid "$dir/slurmctld.pid" slurmctld
  stop_pid "$dir/munge/munged.pid" munged
}

if [[ $cmd == stop ]]; then
  [[ -d $dir ]] || exit 0
  dir=$(cd "$dir" && pwd)
  stop_all
  exit 0
fi

[[ $(id -u) == 0 ]] || die "must run as root (slurmd launches jobs as their user)"
for b in munged munge slurmctld slurmd sinfo sbatch srun; do
  command -v "$b" >/dev/null || die "$b not found (apt-get install slurm-wlm munge)"
done

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
alive "$dir/slurmctld.pid" slurmctld && die "already running in $dir"
# A start that fails half-way stops what it started (and what a failed earlier start left).
trap 'rc=$?; ((rc == 0)) || stop_all; exit $rc' EXIT
stop_all
mkdir -p "$dir"/{munge,state,spool,log}
chmod 755 "$dir/munge" # munged wants its socket folder searchable by all

# munged: a key of our own (the cluster is private to <dir>; munged wants it owned by us, mode 0400) and a socket
# under <dir>, which slurm is pointed at by AuthInfo. --force: munged otherwise refuses a socket whose parent
# folders are not searchable by all (pytest's tmp dirs are 0700); every client here is root anyway.
sock=$dir/munge/munge.socket
((${#sock} < 100)) || die "$sock: too long for a unix socket path (use a shorter <dir>)"
if [[ ! -f $dir/munge/munge.key ]]; then
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
fi
munged --force --socket="$sock" --key-file="$dir/munge/munge.key" --pid-file="$dir/munge/munged.pid" \
  --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" ||
  die "munged did not start: $(tail -n 1 "$dir/log/munged.log" 2>/dev/null)"
munge -n -S "$sock" >/dev/null || die "munged does not answer on $sock"

# Two free ports (a random port that nothing answers on: no python or ss needed).
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port found"
}
ctld_port=$(free_port)
slurmd_port=$(free_port)
[[ $ctld_port != "$slurmd_port" ]] || slurmd_port=$(free_port)

# The node as slurmd itself sees it (CPUs, sockets, cores, threads, memory), so that it registers without
# a mismatch (a node that reports less than slurm.conf says is drained). It is named localhost, at 127.0.0.1.
hw=$(slurmd -C | head -n 1 | sed 's/^NodeName=[^ ]* //')
[[ $hw == *CPUs=* ]] || die "slurmd -C did not describe this node"
cat >"$dir/slurm.conf" <<EOF
# Written by scripts/services/slurm.sh: a single-node test cluster, all state under $dir.
ClusterName=dlexp
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
PlugStackConfig=$dir/plugstack.conf
# No cgroups (containers often lack a writable cgroup tree), no accounting daemon, no MPI.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
# CPUs are consumable, memory is not: several small jobs may run at once.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MailProg=/bin/true
# Schedule a batch job at once (by default it may wait some seconds: sbatch --wait then sleeps 8 s more).
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
NodeName=localhost NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
: >"$dir/plugstack.conf"
export SLURM_CONF=$dir/slurm.conf

slurmctld || die "slurmctld did not start: $(tail -n 1 "$dir/log/slurmctld.log" 2>/dev/null)"
slurmd -N localhost || die "slurmd did not start: $(tail -n 1 "$dir/log/slurmd.log" 2>/dev/null)"

# Wait (30 s at most) until the node has registered and is idle.
state=
deadline=$((SECONDS + 30))
while ((SECONDS < deadline)); do
  state=$(timeout 5 sinfo -h -N -n localhost -o %T 2>/dev/null || true)
  [[ $state == idle ]] && break
  sleep 0.2
done
[[ $state == idle ]] || die "node not idle after 30 s (state '${state:-none}'): see $dir/log/"
# A first batch job proves that jobs run; waiting for it also sits out slurmctld's first seconds, in which a
# batch job waits ~2 s to be scheduled (sbatch --wait, which polls after 2 s and then 8 s, would take 10 s).
job=$(sbatch --parsable --output=/dev/null --time=1 --wrap true) || die "sbatch failed: see $dir/log/"
deadline=$((SECONDS + 30))
while ((SECONDS < deadline)); do
  state=$(timeout 5 squeue -h -t all -j "$job" -o %T 2>/dev/null || true)
  [[ $state == COMPLETED || $state == FAILED || $state == CANCELLED ]] && break
  sleep 0.2
done
[[ $state == COMPLETED ]] || die "a first batch job ended ${state:-nowhere} after 30 s: see $dir/log/"
echo "export SLURM_CONF=$dir/slurm.conf"
