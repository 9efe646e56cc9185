#!/usr/bin/env bash
# Regenerate requirements.cuda.lock.txt: the full resolution of requirements.txt against PyPI on
# Linux x86_64 with Python 3.11, where torch==2.13.0 is the CUDA build (its nvidia-* and triton
# wheels included). Resolves only (pip --dry-run reads the wheels' metadata): nothing is installed.
# Run it on Linux x86_64 with Python 3.11 (the resolution is that platform's).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
report=$(mktemp)
trap 'rm -f "$report"' EXIT
PIP_CONFIG_FILE=/dev/null "$PY" -m pip install --isolated --dry-run --ignore-installed --quiet \
    --index-url https://pypi.org/simple --report "$report" -r requirements.txt
"$PY" - "$report" > requirements.cuda.lock.txt <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
pins = sorted((i["metadata"]["name"], i["metadata"]["version"]) for i in r["install"])
print("# CUDA environment of the GPU nodes: requirements.txt resolved on PyPI for Linux x86_64, Python 3.11")
print("# (torch 2.13.0 there is the CUDA build). Regenerate: bash scripts/lock_cuda.sh. Installed by")
print("# bash scripts/setup.sh --cuda, and by envs/cuda.yaml under --sdm conda.")
for name, version in pins:
    print(f"{name}=={version}")
PY
grep -c "==" requirements.cuda.lock.txt
