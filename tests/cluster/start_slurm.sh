#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (munge + slurmctld + slurmd), for
# `make test-cluster`. Idempotent: installs slurm-wlm and munge from the distribution's
# packages when missing, starts only the daemons that are not running, then waits until the
# node accepts jobs. Needs root (or password-less sudo); no systemd, no cgroups, no accounting
# database (AccountingStorageType=accounting_storage/none, so `sacct` cannot work: clients
# must poll with `--slurm-status-command squeue`, see workflow/profiles/slurm/config.yaml).
# Tested on Debian 12 (slurm-wlm 22.05.8, munge 0.5.15).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "start_slurm.sh: needs root or sudo" >&2; exit 1; }
    SUDO="sudo -n"
fi

alive() {  # alive PIDFILE: the process named in PIDFILE is running
    [ -s "$1" ] && $SUDO kill -0 "$($SUDO cat "$1")" 2>/dev/null
}

# --- packages (about 10 s) ---
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || { echo "start_slurm.sh: slurm-wlm/munge missing and no apt-get" >&2; exit 1; }
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(free -m | awk '/^Mem:/{print $2}') * 95 / 100 ))   # RealMemory a bit under the real memory

# --- munge (authentication between the SLURM daemons and clients) ---
if ! alive /run/munge/munged.pid; then
    [ -s /etc/munge/munge.key ] || $SUDO mungekey --create --keyfile=/etc/munge/munge.key
    $SUDO chown munge:munge /etc/munge/munge.key
    $SUDO chmod 0400 /etc/munge/munge.key
    $SUDO install -d -o munge -g munge -m 0755 /run/munge   # systemd-tmpfiles would create it
    $SUDO runuser -u munge -- /usr/sbin/munged
fi

# --- slurm.conf: one node, one partition `debug`, no accounting ---
$SUDO install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld /var/log/slurm
$SUDO install -d -m 0755 /var/spool/slurmd /etc/slurm
CONF=$(mktemp)
trap 'rm -f "$CONF"' EXIT
cat > "$CONF" <<CONF
# Written by tests/cluster/start_slurm.sh (salad): single-node test cluster.
ClusterName=localcluster
SlurmctldHost=${HOST}
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Jobs without --mem would otherwise take the whole node's memory and run one at a time.
DefMemPerCPU=1000
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Finished jobs stay visible to squeue for 300 s; the Snakemake plugin polls with squeue
# only if MinJobAge >= 3 x --slurm-init-seconds-before-status-checks.
MinJobAge=300
NodeName=${HOST} CPUs=${CPUS} Sockets=1 CoresPerSocket=${CPUS} ThreadsPerCore=1 RealMemory=${MEM} State=UNKNOWN
PartitionName=debug Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
CONF
CHANGED=0
if ! $SUDO cmp -s "$CONF" /etc/slurm/slurm.conf 2>/dev/null; then
    $SUDO install -m 0644 "$CONF" /etc/slurm/slurm.conf
    CHANGED=1
fi

# A changed configuration needs fresh daemons (slurmd re-reads its node line only on start).
if [ "$CHANGED" = 1 ]; then
    for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
        if alive "$pidfile"; then
            pid=$($SUDO cat "$pidfile"); $SUDO kill "$pid"
            for _ in $(seq 1 50); do $SUDO kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        fi
    done
fi
alive /run/slurmctld.pid || $SUDO slurmctld
alive /run/slurmd.pid || $SUDO slurmd

# --- wait until the node takes jobs (about 1 s after a fresh start) ---
for _ in $(seq 1 60); do
    state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
    case "$state" in
        idle|mixed|allocated|completing) echo "slurm: node $HOST $state (partition debug)"; exit 0 ;;
        down*|drain*) $SUDO scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done
echo "start_slurm.sh: node $HOST did not become idle; see /var/log/slurm/" >&2
sinfo >&2 || true
exit 1
