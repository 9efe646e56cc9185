#!/usr/bin/env bash
# Create .venv and install the pinned dependencies (CPU torch 2.13.0 under a constraint).
# Idempotent: does nothing when the installed set matches requirements.txt and constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${CMKD_VENV:-.venv}
stamp="$VENV/.cmkd-installed"
want=$(cat requirements.txt constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
export PIP_CONSTRAINT="$PWD/constraints.txt"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -c constraints.txt -r requirements.txt
"$VENV/bin/python" -m pip install --quiet -c constraints.txt --no-deps -e .
"$VENV/bin/python" - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), f"unexpected torch {torch.__version__}: install under constraints.txt"
PY
echo "$want" > "$stamp"
