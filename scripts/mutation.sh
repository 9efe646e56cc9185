#!/usr/bin/env bash
# Mutation testing of the modules that carry the protocol's promises: scripts/mutate.py with the
# targets, tests and known-harmless survivors of scripts/mutation.yaml (docs/testing.md). 8 minutes
# on 2 quiet cores (up to 25 when shared); not part of CI. Writes results/mutation/{report.md,mutants.csv,summary.json}.
# Extra arguments go to scripts/mutate.py, e.g. --only stats, -j 4, --list.
# Exit status: 0 when every survivor is explained, 1 when one is not, 2 when the clean tests fail.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
exec .venv/bin/python scripts/mutate.py "$@"
