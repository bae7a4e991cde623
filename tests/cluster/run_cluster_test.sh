#!/usr/bin/env bash
# `make test-cluster`: run the pipeline's default target (`rule all`) on config/test.yaml twice,
# locally and through a real single-node SLURM with workflow/profiles/slurm, then check that
# every job went through sbatch, that the sbatch submissions (+ jobs run on the host) equal the
# job count a dry run of the same config plans, and that both runs wrote identical results
# (tests/cluster/verify_cluster_run.py).
#
# Starts SLURM with start_slurm.sh when no node is up (and stops it again at the end), so it
# needs root or password-less sudo on a Debian/Ubuntu machine. Environment knobs:
#   CONFIG=...            config file (default config/test.yaml)
#   CLUSTER_TIMEOUT=1800  seconds for each snakemake run (a hung status poll never returns)
#   KEEP_WORK=1           keep the temporary working directories
#   TARGETS="a b"         build these targets (relative to the workdir) instead of `rule all`
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$REPO/tests/cluster"
PY=${PYTHON:-$REPO/.venv/bin/python}
CONFIG=${CONFIG:-$REPO/config/test.yaml}
TIMEOUT=${CLUSTER_TIMEOUT:-1800}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/salad-cluster.XXXXXX")
export PYTHONHASHSEED=0          # same as tests/conftest.py; sbatch --export=ALL passes it on
export PATH="$(dirname "$PY"):$PATH"   # rules call `python -m salad`: the venv's, here and in jobs
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"   # this checkout's salad, not another editable install

STARTED=0
cleanup() {
    status=$?
    # Cancel any SLURM job this run left behind (after a timeout), by its working directory.
    if command -v squeue >/dev/null; then
        squeue -h -o '%i %Z' 2>/dev/null | awk -v w="$WORK/" 'index($2 "/", w) == 1 {print $1}' |
            while read -r id; do scancel "$id" || true; done
    fi
    [ "$STARTED" = 1 ] && "$HERE/stop_slurm.sh" || true
    if [ "$status" = 0 ] && [ "${KEEP_WORK:-0}" != 1 ]; then
        rm -rf "$WORK"
    else
        echo "working directories kept: $WORK"
    fi
    exit "$status"
}
trap cleanup EXIT

if ! sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated|completing)'; then
    "$HERE/start_slurm.sh"
    STARTED=1
fi

# Without accounting, the plugin's default `sacct` status query fails and snakemake would wait
# forever: poll squeue instead (see workflow/profiles/slurm/config.yaml).
STATUS=()
ACCOUNTING=$(scontrol show config | awk '$1 == "AccountingStorageType" {print $3}')
if [ "$ACCOUNTING" = accounting_storage/none ]; then
    STATUS=(--slurm-status-command squeue)
fi

# TARGETS (optional, space-separated): files to build instead of `rule all` (a quick check)
read -r -a TARGET_ARGS <<< "${TARGETS:-}"
SMK=("$PY" -m snakemake ${TARGET_ARGS[@]+"${TARGET_ARGS[@]}"} --snakefile "$REPO/Snakefile" --configfile "$CONFIG")   # targets first: --configfile takes several values
now() { date +%s.%N; }

echo "== local run ($WORK/local)"
t0=$(now)
timeout -k 30 "$TIMEOUT" "${SMK[@]}" --directory "$WORK/local" --cores 2 --quiet progress
t1=$(now)

echo "== planned jobs (dry run of the same config and targets, $WORK/planned.txt)"
"${SMK[@]}" --directory "$WORK/plan" -n --quiet rules > "$WORK/planned.txt" 2>&1
grep -m1 "^total" "$WORK/planned.txt" || true

echo "== SLURM run ($WORK/slurm)"
CTLD_LOG=/var/log/slurm/slurmctld.log
CTLD_OFFSET=$(stat -c %s "$CTLD_LOG" 2>/dev/null || echo 0)
# Fast polling (the plugin waits 40 s before its first status check by default), keep every
# job's SLURM output as evidence, no resubmission so a failure shows at once.
timeout -k 30 "$TIMEOUT" "${SMK[@]}" --directory "$WORK/slurm" \
    --profile "$REPO/workflow/profiles/slurm" --jobs 2 "${STATUS[@]}" \
    --slurm-init-seconds-before-status-checks 1 --seconds-between-status-checks 1 \
    --slurm-keep-successful-logs --retries 0 --latency-wait 5 --quiet progress
t2=$(now)

echo "== checks"
"$PY" "$HERE/verify_cluster_run.py" "$WORK/local" "$WORK/slurm" \
    --slurmctld-log "$CTLD_LOG" --slurmctld-offset "$CTLD_OFFSET" --planned "$WORK/planned.txt"
awk -v a="$t0" -v b="$t1" -v c="$t2" \
    'BEGIN {printf "wall time: local %.0f s, SLURM %.0f s\n", b - a, c - b}'
