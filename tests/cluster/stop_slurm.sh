#!/usr/bin/env bash
# Stop the single-node SLURM cluster that start_slurm.sh started (slurmd, slurmctld, munged,
# by their pid files, in this order). `--purge` also deletes the saved job state, so the next
# start begins again at job id 1. Safe to run when nothing is running.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"

for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
    [ -s "$pidfile" ] || continue
    pid=$($SUDO cat "$pidfile")
    if $SUDO kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 50); do $SUDO kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if $SUDO kill -0 "$pid" 2>/dev/null; then
            echo "stop_slurm.sh: $pidfile ($pid) still running after 10 s" >&2
            exit 1
        fi
    fi
done
if [ "${1:-}" = "--purge" ]; then
    $SUDO rm -rf /var/spool/slurmctld /var/spool/slurmd
fi
echo "slurm: stopped"
