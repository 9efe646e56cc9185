#!/usr/bin/env bash
# CI step for the Slurm profile: bring up a one-node Slurm cluster on localhost, run a small grid
# through `snakemake --profile slurm` with a test override (no GPU, the node's partition), check
# every output, count the sbatch submissions, measure the wall time, tear the cluster down. Needs root (Debian 12: installs slurmctld slurmd slurm-client munge when
# missing) and the project's .venv (scripts/setup.sh).
#
#   bash scripts/slurm_ci.sh
#
# The grid (SEEDS seeds x teacher, kd) runs three ways, then two checks of the GPU route ("gpu": a
# trivial baseline beside the networks with one fake GPU: which jobs ask for it, and a GPU job with
# the CPU torch stops at start; "cell": cmkd cell with two config files through the profile): "cells" (the config's default
# seeds_per_job: all, one training job per cell), "grouped" (seeds_per_job: 1, the profile groups
# the seeds of a cell into one Slurm job), "ungrouped" (seeds_per_job: 1, CMKD_SLURM_GROUPS=0).
# Knobs: CMKD_SLURM_CI_SEEDS (default 4), CMKD_SLURM_CI_VARIANTS (default "cells grouped
# ungrouped gpu cell"), CMKD_SLURM_CI_TIMEOUT (seconds per Snakemake run, default 600),
# CMKD_SLURM_CI_TARGETS (default: runs.csv and the tables), CMKD_SLURM_CI_KEEP=1 keeps the
# temporary directory (logs) after the run.
# Prints one summary line:  slurm-ci: OK ... cells: N sbatch (n training), T s; grouped: ...
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=$ROOT/.venv/bin/python
SNAKEMAKE=$ROOT/.venv/bin/snakemake
SEEDS=${CMKD_SLURM_CI_SEEDS:-4}
TIMEOUT=${CMKD_SLURM_CI_TIMEOUT:-600}
# what each run builds: the training runs, the aggregation and the tables (the plots and
# statistics rules are the workflow tests' business; CMKD_SLURM_CI_TARGETS=all runs everything)
read -r -a TARGETS <<<"${CMKD_SLURM_CI_TARGETS:-results/summary/runs.csv results/summary/tables/summary.csv}"

log() { echo "[slurm_ci] $*" >&2; }
die() { log "FAILED: $*"; echo "slurm-ci: FAILED $*"; exit 1; }

[[ -x $SNAKEMAKE ]] || die "no $SNAKEMAKE: run scripts/setup.sh first"

# --- packages ----------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
    || ! command -v munged >/dev/null; then
    log "installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
fi

# --- cluster (torn down on every exit) -----------------------------------------------------------
WORK=$(mktemp -d /tmp/cmkd-slurm-ci.XXXXXX)
chmod 0755 "$WORK"   # munged runs as user munge and must reach its socket under it
export CMKD_SLURM_DIR=$WORK/cluster
cleanup() {
    local rc=$?
    bash "$ROOT/scripts/slurm_local.sh" down --keep || true
    if [[ ${CMKD_SLURM_CI_KEEP:-0} == 1 || $rc != 0 ]]; then
        log "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'log "FAILED: line $LINENO: $BASH_COMMAND"' ERR   # never fail without saying where
trap 'exit 130' INT TERM

t0=$SECONDS
# one fake GPU (a gres without device files): jobs that ask for --gpus are scheduled, so the
# submissions show which jobs ask for a GPU ("gpu" variant); no process sees a real device
export CMKD_SLURM_FAKE_GPUS=${CMKD_SLURM_FAKE_GPUS:-1}
bash "$ROOT/scripts/slurm_local.sh" up
UP_S=$((SECONDS - t0))
eval "$(bash "$ROOT/scripts/slurm_local.sh" env)"   # SLURM_CONF, and the srun wrapper first in PATH
CTLD_LOG=$CMKD_SLURM_DIR/log/slurmctld.log


# --- the grid: tiny config of the tests, SEEDS seeds x (teacher, kd), one dimension -----------
# kd requires the teacher of its seed, so the student cell waits for the teacher cell.
# Two configs: seeds_per_job all (the default: one training job per cell, every seed in one
# process) and seeds_per_job 1 (one training job per seed).
"$PY" - "$WORK" "$SEEDS" <<'EOF'
import sys
import yaml
sys.path.insert(0, "tests")
from conftest import tiny_config

cfg = tiny_config()
cfg["seeds"] = list(range(int(sys.argv[2])))
methods = ["teacher", "kd"]
cfg["experiments"][0]["methods"] = methods
# only the tables whose rows this grid fills (the config check refuses tables left empty)
cfg["tables"] = [t for t in cfg.get("tables", []) if set(t.get("rows") or {}) <= set(methods)]
for name, per_job in (("cells", "all"), ("seeds", 1)):
    cfg["seeds_per_job"] = per_job
    with open(f"{sys.argv[1]}/config-{name}.yaml", "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
# "gpu": a trivial baseline beside the networks, the networks on the CPU on purpose (device: cpu;
# the node's GPU is a fake), GPU jobs planned with this CPU torch (allow_cpu_torch)
cfg["seeds_per_job"] = "all"
cfg["trivial_methods"] = ["majority"]
cfg["device"], cfg["allow_cpu_torch"] = "cpu", True
with open(f"{sys.argv[1]}/config-gpu.yaml", "w") as f:
    yaml.safe_dump(cfg, f, sort_keys=False)
EOF
N_RUNS=$((SEEDS * 2))

# run_grid NAME CONFIG GROUPS: one Snakemake run into $WORK/NAME; sets SUBMITS, TRAIN_SUBMITS, WALL
run_grid() {
    local name=$1 config=$WORK/config-$2.yaml groups=$3 dir=$WORK/$1 gpus=${4:-0} before ids start rc
    mkdir -p "$dir"
    before=$(grep -c _slurm_rpc_submit_batch_job "$CTLD_LOG" || true)
    start=$(date +%s.%N)
    set +e
    # the test override: this node's partition, no GPU (CMKD_SLURM_*), and profiles/slurm-ci;
    # a hung Snakemake ignores SIGTERM: bound it with SIGINT (it then cancels its Slurm jobs)
    CMKD_SLURM_GPUS=$gpus CMKD_SLURM_PARTITION=debug CMKD_SLURM_GROUPS=$groups \
        CMKD_SLURM_SEEDS_PER_JOB=$SEEDS OMP_NUM_THREADS=1 \
        timeout -s INT -k 30 "$TIMEOUT" "$SNAKEMAKE" --profile slurm --workflow-profile profiles/slurm-ci \
        -s "$ROOT/Snakefile" --directory "$dir" --configfile "$config" --verbose "${TARGETS[@]}" \
        >"$dir/snakemake.log" 2>&1
    rc=$?
    set -e
    WALL=$("$PY" -c "import time,sys; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$start")
    if ((rc != 0)); then
        tail -n 40 "$dir/snakemake.log" >&2
        die "$name: snakemake exited with $rc after ${WALL}s (log: $dir/snakemake.log)"
    fi
    sleep 1
    SUBMITS=$(($(grep -c _slurm_rpc_submit_batch_job "$CTLD_LOG" || true) - before))
    # the Slurm comment names rule and wildcards (or group); jobs stay in squeue for MinJobAge
    ids=$(grep -oE 'SLURM jobid [0-9]+' "$dir/snakemake.log" | awk '{print $3}' | sort -un | paste -sd, -)
    squeue --states=all -h -j "$ids" -o "%i|%T|%j|%k" >"$dir/squeue.txt"
    TRAIN_SUBMITS=$(grep -E '\|rule_(train_|cell_)' "$dir/squeue.txt" | grep -cvE 'rule_train_trivial_|_train_trivial$' || true)
    if grep -vq '|COMPLETED|' "$dir/squeue.txt"; then
        cat "$dir/squeue.txt" >&2
        die "$name: a Slurm job did not complete"
    fi
    # every output exists, and Snakemake has nothing left to do (by modification times: the
    # code may have been edited while the CI ran)
    "$PY" - "$dir" "$SEEDS" <<'EOF' || die "$name: outputs missing"
import sys
from pathlib import Path
d, seeds = Path(sys.argv[1]), int(sys.argv[2])
run = d / "results/synthetic/face_eeg-to-face/arousal"
methods = [m for m in ("majority", "teacher", "kd") if (run / m).is_dir()]
want = [run / m / f"seed{s}" / f for m in methods for s in range(seeds)
        for f in ("metrics.json", "model.pt", "history.csv", "features.npz")]
want += [d / "results/summary/runs.csv", d / "results/summary/tables/summary.csv"]
missing = [str(p) for p in want if not p.is_file() or p.stat().st_size == 0]
rows = (d / "results/summary/runs.csv").read_text().strip().splitlines()
if missing or len(rows) != 1 + len(methods) * seeds or not {"teacher", "kd"} <= set(methods):
    sys.exit(f"missing outputs: {missing}; runs.csv rows: {len(rows) - 1}")
EOF
    CMKD_SLURM_GPUS=$gpus "$SNAKEMAKE" --profile slurm --workflow-profile profiles/slurm-ci -s "$ROOT/Snakefile" \
        --directory "$dir" --configfile "$config" -n "${TARGETS[@]}" --rerun-triggers mtime >"$dir/dryrun.log" 2>&1 \
        || die "$name: dry-run after the run failed"
    grep -q "Nothing to be done" "$dir/dryrun.log" || die "$name: jobs left to run after the run"
    log "$name: $SUBMITS sbatch ($TRAIN_SUBMITS for the $N_RUNS training runs), ${WALL}s"
    log "$name: Slurm jobs (id|state|name|comment):"
    sed 's/^/    /' "$dir/squeue.txt" >&2
}

# expect_train CONFIG SEEDS_PER_JOB RUN_DIR: "runtime mem_mb" that cmkd.resources.estimate derives
# for the teacher cell of this grid with nothing prepared yet (the workflow evaluates a job's
# resources when it builds the DAG, before the prepare job has run), for a job holding
# SEEDS_PER_JOB seeds. The config is the one the workflow sees in RUN_DIR: Snakemake reads the
# Snakefile's `configfile: "config.yaml"` relative to the working directory and skips it when it is
# missing there and --configfile is given, so the grid runs on its own config, with the schema's
# defaults filled in (not merged over the repository's config.yaml)
expect_train() {
    "$PY" -c '
import os, sys
import yaml
root, cfg_file, n, empty, run_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
sys.path.insert(0, os.path.join(root, "src"))
from snakemake.utils import validate
from cmkd.config import deep_merge
from cmkd.resources import estimate
cfg = {}
for f in (os.path.join(run_dir, "config.yaml"), cfg_file):
    if os.path.isfile(f):
        with open(f, encoding="utf-8") as fh:
            cfg = deep_merge(cfg, yaml.safe_load(fh) or {})
validate(cfg, os.path.join(root, "config/schema.yaml"))
cfg["results"] = empty
r = estimate(cfg, "synthetic", "face_eeg-to-face", "arousal", "teacher", n)
print(r["runtime"], r["mem_mb"])
' "$ROOT" "$WORK/config-$1.yaml" "$2" "$WORK/nothing-prepared" "$WORK/$3"
}

# check_train_job NAME RUNTIME MEM: the first training submission asks for one CPU and the
# runtime and memory the workflow derives for it (cmkd.resources.estimate)
check_train_job() {
    local call
    call=$(grep -m1 -E "sbatch call: .*--comment '?rule_(cell|train)_" "$WORK/$1/snakemake.log" | sed -n 1p)
    log "$1: a training job asks for: $(grep -oE -- "(-t '?[0-9]+'?|--mem [0-9]+|--cpus-per-task=[0-9]+)" <<<"$call" | paste -sd' ' -) (derived: -t $2 --mem $3)"
    grep -qE -- " -t '?$2'? .*--mem $3 .*--cpus-per-task=1( |$)" <<<"$call" \
        || die "$1: a training job does not ask for the derived resources (-t $2 --mem $3): $call"
}

# check_gpu_requests NAME: every network training job asked Slurm for a GPU, no trivial-baseline
# job did (the sbatch calls in the Snakemake log; the comment names the rule)
check_gpu_requests() {
    local log=$WORK/$1/snakemake.log net triv
    # the comment: rule_train_wildcards_... / rule_train_trivial_wildcards_..., or for a grouped
    # cell rule_cell_<cell>_train / rule_cell_<cell>_train_trivial
    net=$(grep -E "sbatch call: .*--comment '?rule_(train_wildcards|cell_[^ ']*_train)'?( |$)" "$log" || true)
    triv=$(grep -E "sbatch call: .*--comment '?rule_(train_trivial_wildcards|cell_[^ ']*_train_trivial)'?( |$)" "$log" || true)
    [[ -n $net && -n $triv ]] || die "$1: no training or no trivial-baseline submission in the log"
    if grep -vqE -- "--gpus=1|--gres[= ]'?gpu:1" <<<"$net"; then die "$1: a network training job without a GPU request: $net"; fi
    if grep -qE -- "--gpus|--gres[= ]'?gpu" <<<"$triv"; then die "$1: a trivial-baseline job asks for a GPU: $triv"; fi
    log "$1: network training jobs ask for a GPU ($(grep -c . <<<"$net")), trivial-baseline jobs do not ($(grep -c . <<<"$triv"))"
    # a job Slurm gives a GPU, with this CPU torch and device: auto, stops at start with one line
    "$PY" - "$WORK/config-gpu.yaml" >"$WORK/$1/failfast-spec.json" <<'EOF'
import json, sys
import yaml
from cmkd.config import run_spec
cfg = yaml.safe_load(open(sys.argv[1]))
cfg["device"] = "auto"
print(json.dumps(run_spec(cfg, "synthetic", "face_eeg-to-face", "arousal", "teacher", 0)))
EOF
    local rc=0 last
    srun -p debug --gpus=1 --mem 2000 -t 5 "$PY" -m cmkd train --spec "@$WORK/$1/failfast-spec.json" \
        --out "$WORK/$1/failfast" >"$WORK/$1/failfast.log" 2>&1 || rc=$?
    last=$(grep -v '^srun: ' "$WORK/$1/failfast.log" | grep . | tail -n 1)
    ((rc != 0)) && [[ $last == "error: this job was given a GPU ("*"is a CPU build"* ]] && [[ ! -e $WORK/$1/failfast/metrics.json ]] \
        || die "$1: a GPU job with a CPU torch did not stop at start (exit $rc): $last"
    log "$1: a GPU job with the CPU torch stops at start: $last"
}

# run_cell_variant: `python -m cmkd cell` with two config files, through the Slurm profile, from
# a working folder of its own (its config.yaml: the grid's; a.yaml: two seeds; b.yaml: one epoch)
run_cell_variant() {
    local dir=$WORK/cell start rc
    mkdir -p "$dir"
    cp "$WORK/config-cells.yaml" "$dir/config.yaml"
    printf 'seeds: [0, 1]\n' >"$dir/a.yaml"
    printf 'training:\n  max_epochs: 1\n' >"$dir/b.yaml"
    start=$(date +%s)
    set +e
    (cd "$dir" && CMKD_SLURM_GPUS=0 CMKD_SLURM_PARTITION=debug OMP_NUM_THREADS=1 \
        timeout -s INT -k 30 "$TIMEOUT" "$PY" -m cmkd cell synthetic face_eeg-to-face arousal teacher \
        --configfile a.yaml --configfile b.yaml --profile "$ROOT/slurm" -- --workflow-profile "$ROOT/profiles/slurm-ci") \
        >"$dir/cell.log" 2>&1
    rc=$?
    set -e
    WALL=$(( $(date +%s) - start ))
    ((rc == 0)) || { tail -n 40 "$dir/cell.log" >&2; die "cell: exited with $rc"; }
    "$PY" - "$dir" <<'EOF' || die "cell: the two config files were not both applied"
import sys
from pathlib import Path
import pandas as pd
run = Path(sys.argv[1]) / "results/synthetic/face_eeg-to-face/arousal/teacher"
seeds = sorted(p.name for p in run.glob("seed*"))
assert seeds == ["seed0", "seed1"], seeds                                   # a.yaml
assert all(len(pd.read_csv(run / s / "history.csv")) == 1 for s in seeds)  # b.yaml
EOF
    grep -q "reproduced now" "$dir/cell.log" || die "cell: no summary printed"
    # every Slurm job leaves its log under .snakemake/slurm_logs/<rule or group>/<jobid>.log
    SUBMITS=$(find "$dir/.snakemake/slurm_logs" -name '*.log' | wc -l)
    TRAIN_SUBMITS=$(find "$dir/.snakemake/slurm_logs" -path '*_train/*' -name '*.log' | wc -l)
    ((TRAIN_SUBMITS >= 1)) || die "cell: no training job went through Slurm"
    log "cell: two config files through --profile slurm: $SUBMITS sbatch, ${WALL}s"
}

SUMMARY=""
for variant in ${CMKD_SLURM_CI_VARIANTS:-cells grouped ungrouped gpu cell}; do
    case $variant in
        # one job per cell from the workflow (seeds_per_job: all), the profile as it is
        cells) run_grid cells cells 1; want=2
            read -r rt mem < <(expect_train cells "$SEEDS" cells); check_train_job cells "$rt" "$mem" ;;
        # one job per seed, grouped by the profile: the seeds of a cell in one submission
        grouped) run_grid grouped seeds 1; want=2
            read -r rt mem < <(expect_train seeds 1 grouped); check_train_job grouped "$((SEEDS * rt))" "$mem" ;;
        # one job per seed, one submission each
        ungrouped) run_grid ungrouped seeds 0; want=$N_RUNS ;;
        # GPU requests by need: the networks ask for the (fake) GPU, the trivial baseline does not
        gpu) run_grid gpu gpu 1 1; want=2; check_gpu_requests gpu ;;
        # the reviewer's cell command with two config files, through the Slurm profile
        cell) run_cell_variant; want=$TRAIN_SUBMITS ;;
        *) die "unknown variant $variant (cells, grouped, ungrouped, gpu, cell)" ;;
    esac
    ((TRAIN_SUBMITS == want)) || die "$variant: $TRAIN_SUBMITS training submissions, expected $want"
    SUMMARY+=" $variant: ${SUBMITS} sbatch (${TRAIN_SUBMITS} training), ${WALL}s;"
done
echo "slurm-ci: OK ${N_RUNS} training runs; cluster up in ${UP_S}s;${SUMMARY%;}"
