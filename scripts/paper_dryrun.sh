#!/usr/bin/env bash
# Dry-run and lint of the full paper grid (config/paper.yaml) against small generated data roots in the
# documented on-disk formats, so the paper DAG is checked without the licensed data sets.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/python - "$tmp" <<'PY'
import sys, yaml
sys.path.insert(0, "tests")
from fixtures import write_all
from fixtures_seed import write_all_seed
roots = write_all(sys.argv[1] + "/raw")
roots.update(write_all_seed(sys.argv[1] + "/raw"))
# the cross-session and raw-EEG entries point at the same roots (a dry run reads no data file)
roots.update(seed_iv_cross_session=roots["seed_iv"], seed_raw=roots["seed"], seed_iv_raw=roots["seed_iv"])
with open(sys.argv[1] + "/roots.yaml", "w") as f:
    yaml.safe_dump({"datasets": {k: {"root": str(v)} for k, v in roots.items()}}, f)
PY
start=$(date +%s%N)
.venv/bin/snakemake -n --configfile config/paper.yaml "$tmp/roots.yaml" --quiet rules "$@"
end=$(date +%s%N)
ms=$(( (end - start) / 1000000 ))
echo "paper grid dry-run: $ms ms"
# the planning-time target (a login node plans the paper grid in seconds): CMKD_DRYRUN_MAX_MS, default 15 s
if (( ms > ${CMKD_DRYRUN_MAX_MS:-15000} )); then
  echo "paper grid dry-run took $ms ms, over the ${CMKD_DRYRUN_MAX_MS:-15000} ms target"; exit 1
fi
# every table cell of the paper grid maps to runs in its DAG
.venv/bin/python -m cmkd check --configfile config/paper.yaml --configfile "$tmp/roots.yaml"
# lint of the paper-scale grid (the same rules; config values change only what the DAG holds)
lint_out=$(.venv/bin/snakemake --lint --configfile config/paper.yaml "$tmp/roots.yaml" 2>&1) || { echo "$lint_out"; exit 1; }
if ! echo "$lint_out" | grep -q "Congratulations, your workflow is in a good condition"; then
  echo "$lint_out"; echo "paper grid: lint reported problems"; exit 1
fi
echo "paper grid lint: clean"
