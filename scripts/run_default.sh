#!/usr/bin/env bash
# The main job: set up, run the embedded default workflow (synthetic data, every method, 3 seeds,
# both dimensions) and write report.html. Extra arguments go to snakemake (e.g. --cores 4).
set -euo pipefail
cd "$(dirname "$0")/.."
t_setup=$(date +%s)
bash scripts/setup.sh
start=$(date +%s)
.venv/bin/python -m cmkd unlock-stale   # a run killed with SIGKILL leaves its lock behind
# greedy scheduler: Snakemake's default ILP scheduler builds and solves an integer program at every
# scheduling round; on 2 cores its main process then used 0.21 CPU-s per second of the run, against
# 0.14 with greedy (9.8 CPU-min over 46 min vs 5.3 over 37 min), CPU the training jobs need
.venv/bin/snakemake --cores "${CORES:-$(nproc)}" --rerun-incomplete --scheduler greedy "$@"
.venv/bin/snakemake --report report.html
end=$(date +%s)
# the run's own timing, beside its summary (python -m cmkd quote --refresh carries it into docs/snapshot/,
# and README's figure is generated from it)
results=$(.venv/bin/python -c 'import yaml; print(yaml.safe_load(open("config.yaml")).get("results", "results"))')
code=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then code="$code+modified"; fi
{
  echo "code_version: '$code'"
  echo "cores: ${CORES:-$(nproc)}"
  echo "setup_s: $((start - t_setup))"
  echo "workflow_and_report_s: $((end - start))"
  echo "total_s: $((end - t_setup))"
  echo "training_jobs: $(find "$results/benchmarks/train" -name '*.tsv' 2>/dev/null | wc -l)"
} > "$results/summary/timing.yaml"
echo "default workflow + report: $((end - start)) s ($((end - t_setup)) s with set-up); open report.html"
