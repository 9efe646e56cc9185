#!/usr/bin/env bash
# The main job: set up, run the embedded default workflow (synthetic data, every method, 3 seeds,
# both dimensions) and write report.html. Extra arguments go to snakemake (e.g. --cores 4).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
start=$(date +%s)
.venv/bin/python -m cmkd unlock-stale   # a run killed with SIGKILL leaves its lock behind
.venv/bin/snakemake --cores "${CORES:-$(nproc)}" --rerun-incomplete "$@"
.venv/bin/snakemake --report report.html
end=$(date +%s)
echo "default workflow + report: $((end - start)) s; open report.html"
