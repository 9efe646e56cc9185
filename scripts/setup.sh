#!/usr/bin/env bash
# Create the virtual environment and install the pinned dependencies. Two variants, chosen on purpose:
#
#   bash scripts/setup.sh          CPU (laptops, CI, CPU partitions): torch 2.13.0, the CPU build, under
#                                  constraints.txt; every other package at its requirements.lock.txt version
#   bash scripts/setup.sh --cuda   CUDA (GPU nodes): requirements.cuda.lock.txt, PyPI's CUDA build of
#                                  torch 2.13.0 with its nvidia-* wheels (about 3 GB to download); build
#                                  it on a file system the GPU nodes see, with the Python they run
#
# The folder is $CMKD_VENV (default .venv). Idempotent: does nothing when the installed variant and
# its pins are unchanged. The CUDA variant checks the build it got (torch.version.cuda); whether the
# node's driver can run it is checked by every GPU job at start (cmkd.devices).
set -euo pipefail
cd "$(dirname "$0")/.."
VARIANT=cpu
for arg in "$@"; do
  case $arg in
    --cuda) VARIANT=cuda ;;
    --cpu) VARIANT=cpu ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg' (--cpu | --cuda)" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
VENV=${CMKD_VENV:-.venv}
stamp="$VENV/.cmkd-installed"
if [ "$VARIANT" = cuda ]; then
  want="cuda $(cat requirements.cuda.lock.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
else
  want=$(cat requirements.txt constraints.txt requirements.lock.txt pyproject.toml | sha256sum | cut -d' ' -f1)
fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
if [ "$VARIANT" = cuda ]; then
  "$VENV/bin/python" -m pip install --quiet -r requirements.cuda.lock.txt
  "$VENV/bin/python" -m pip install --quiet --no-deps -e .
  "$VENV/bin/python" - <<'PY'
import torch
assert torch.__version__.split("+")[0] == "2.13.0", f"unexpected torch {torch.__version__}"
assert torch.version.cuda, (f"torch {torch.__version__} is a CPU build: pip took a CPU wheel (a local wheel "
                            "folder or index in the pip configuration?); install requirements.cuda.lock.txt from PyPI")
print(f"torch {torch.__version__} for CUDA {torch.version.cuda}; a GPU visible here: {torch.cuda.is_available()}")
PY
else
  # the lock pins every package the direct requirements pull in; its torch line (+cpu, a local
  # version PyPI does not serve) is left to constraints.txt
  lock=$(mktemp)
  trap 'rm -f "$lock"' EXIT
  grep -vE '^(torch|torchvision)==|^#|^-e ' requirements.lock.txt > "$lock"
  export PIP_CONSTRAINT="$PWD/constraints.txt"
  "$VENV/bin/python" -m pip install --quiet -c constraints.txt -c "$lock" -r requirements.txt
  "$VENV/bin/python" -m pip install --quiet -c constraints.txt --no-deps -e .
  "$VENV/bin/python" - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), f"unexpected torch {torch.__version__}: install under constraints.txt"
PY
fi
echo "$want" > "$stamp"
