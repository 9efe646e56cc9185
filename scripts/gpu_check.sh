#!/usr/bin/env bash
# CUDA check (about 3-5 minutes on one GPU): run from the repository root on a machine with a GPU.
#   1. the CUDA path end to end on a few default-config cells (teacher, KD, MKD teacher and
#      student on a small synthetic set), twice, and whether the rerun is bit-identical;
#   2. the same cells with training.autocast bf16 (runs, and what changes);
#   3. paper-size throughput of the pvt_v2_b0 face student (224 px x 5 frames): the project's
#      training path vs a plain PyTorch AMP loop, without and with autocast; peak GPU memory.
# Writes everything to ${OUT:-gpu_check_out}/ and prints a summary.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
OUTDIR=${OUT:-gpu_check_out}
mkdir -p "$OUTDIR"
nvidia-smi -L 2>&1 | tee "$OUTDIR/gpu.txt" || true
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to torch'; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" \
  | tee -a "$OUTDIR/gpu.txt" || { echo "gpu_check: torch sees no CUDA device"; exit 1; }

echo "== 1. default cells on CUDA, run twice"
for r in a b; do
  rm -rf "$OUTDIR/runs_$r"
  timeout 150 "$PY" scripts/scale_check_runs.py "$OUTDIR/runs_$r" > "$OUTDIR/cells_$r.txt" 2> "$OUTDIR/cells_$r.err" \
    || { echo "cells run $r failed:"; tail -20 "$OUTDIR/cells_$r.err"; }
  cat "$OUTDIR/cells_$r.txt"
done
if cmp -s "$OUTDIR/cells_a.txt" "$OUTDIR/cells_b.txt" && [ -s "$OUTDIR/cells_a.txt" ]; then
  echo "rerun on CUDA: identical metrics, histories and weights"
else
  echo "rerun on CUDA: NOT identical (see diff below); CUDA kernels without a deterministic implementation differ run to run"
  diff "$OUTDIR/cells_a.txt" "$OUTDIR/cells_b.txt" || true
fi

echo "== 2. the same cells with training.autocast=bf16"
rm -rf "$OUTDIR/runs_bf16"
timeout 150 "$PY" scripts/scale_check_runs.py "$OUTDIR/runs_bf16" autocast=bf16 > "$OUTDIR/cells_bf16.txt" 2> "$OUTDIR/cells_bf16.err" \
  || { echo "bf16 cells failed:"; tail -20 "$OUTDIR/cells_bf16.err"; }
cat "$OUTDIR/cells_bf16.txt"

echo "== 3. paper-size throughput: project path vs plain AMP loop (pvt_v2_b0, 224 px x 5 frames)"
timeout 240 "$PY" - "$OUTDIR" <<'PY' 2>&1 | tee "$OUTDIR/throughput.txt"
import json, sys
from pathlib import Path
from cmkd import bench_scale as b
out = Path(sys.argv[1])
size = dict(b.DEAP_SIZE, n_subjects=2, n_trials=10)   # 300 segments: enough batches, quick to write
prep = b.write_deap_sized(out / "deap_small", size, face_segments=15)
for stream_mb in (1e9, 0):   # in-memory parts, then streamed parts (what a DEAP-sized job uses)
    import cmkd.data.stream as st
    st.DEFAULT_STREAM_THRESHOLD_MB = stream_mb
    rows = b.throughput_compare(str(prep), batch_size=32, steps=6, device="cuda", autocasts=("off", "bf16", "fp16"))
    for r in rows:
        print(json.dumps(r))
        print(f"{r['data_access']:6s} autocast={r['autocast']:4s}: project {r['project_samples_per_s']:.1f} seg/s, "
              f"plain {r['plain_samples_per_s']:.1f} seg/s, ratio {r['ratio']:.2f}; peak GPU {r['peak_gpu_mb']:.0f} MB "
              f"(plain {r['plain_peak_gpu_mb']:.0f} MB)", flush=True)
PY
echo "gpu_check: done; outputs in $OUTDIR/"
