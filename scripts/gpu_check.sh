#!/usr/bin/env bash
# CUDA check (at most about 7 minutes on one GPU): run from the repository root on a machine with a GPU,
# in the CUDA environment (bash scripts/setup.sh --cuda).
#   1. the CUDA path end to end on a few default-config cells (teacher, KD, MKD teacher and
#      student on a small synthetic set), twice, and whether the rerun is bit-identical;
#   2. the same cells with training.autocast bf16 (runs, and what changes);
#   3. paper-size throughput of the pvt_v2_b0 face student (224 px x 5 frames): the project's
#      training path vs a plain PyTorch AMP loop, without and with autocast; peak GPU memory.
# Every figure goes to ONE file, $OUT/gpu_check.json (card, versions, rerun identity, throughput,
# peak memory, seconds per step); the raw outputs stay beside it. Copy the card's name and its
# figures into docs/scale.md ("GPU check").
#   GPU_CHECK_SMOKE=1 runs the same steps on the CPU at toy sizes (checks the script, measures nothing).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
OUTDIR=${OUT:-gpu_check_out}
SMOKE=${GPU_CHECK_SMOKE:-0}
mkdir -p "$OUTDIR"
T0=$(date +%s)
if [ "$SMOKE" = 1 ]; then
  DEVICE=cpu; BATCH=2; STEPS=1; CELL_T=300; TP_T=600
  echo "smoke run on the CPU (GPU_CHECK_SMOKE=1): the figures say nothing about a GPU" | tee "$OUTDIR/gpu.txt"
else
  DEVICE=cuda; BATCH=32; STEPS=6; CELL_T=100; TP_T=180
  nvidia-smi -L 2>&1 | tee "$OUTDIR/gpu.txt" || true
  "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to torch'; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))" \
    | tee -a "$OUTDIR/gpu.txt" || { echo "gpu_check: torch sees no CUDA device"; exit 1; }
fi

echo "== 1. default cells on $DEVICE, run twice"
for r in a b; do
  rm -rf "$OUTDIR/runs_$r"
  CMKD_CHECK_DEVICE=$DEVICE timeout "$CELL_T" "$PY" scripts/scale_check_runs.py "$OUTDIR/runs_$r" > "$OUTDIR/cells_$r.txt" 2> "$OUTDIR/cells_$r.err" \
    || { echo "cells run $r failed:"; tail -20 "$OUTDIR/cells_$r.err"; }
  cat "$OUTDIR/cells_$r.txt"
done
if cmp -s "$OUTDIR/cells_a.txt" "$OUTDIR/cells_b.txt" && [ -s "$OUTDIR/cells_a.txt" ]; then
  echo "rerun: identical metrics, histories and weights"
else
  echo "rerun: NOT identical (see diff below); CUDA kernels without a deterministic implementation differ run to run"
  diff "$OUTDIR/cells_a.txt" "$OUTDIR/cells_b.txt" || true
fi

echo "== 2. the same cells with training.autocast=bf16"
rm -rf "$OUTDIR/runs_bf16"
CMKD_CHECK_DEVICE=$DEVICE timeout "$CELL_T" "$PY" scripts/scale_check_runs.py "$OUTDIR/runs_bf16" autocast=bf16 > "$OUTDIR/cells_bf16.txt" 2> "$OUTDIR/cells_bf16.err" \
  || { echo "bf16 cells failed:"; tail -20 "$OUTDIR/cells_bf16.err"; }
cat "$OUTDIR/cells_bf16.txt"

echo "== 3. paper-size throughput: project path vs plain AMP loop (pvt_v2_b0, 224 px x 5 frames)"
timeout "$TP_T" "$PY" - "$OUTDIR" "$DEVICE" "$BATCH" "$STEPS" <<'PY' 2>&1 | tee "$OUTDIR/throughput.txt"
import json, sys
from pathlib import Path
from cmkd import bench_scale as b
out, device, batch, steps = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
size = dict(b.DEAP_SIZE, n_subjects=2, n_trials=10)   # 300 segments: enough batches, quick to write
prep = b.write_deap_sized(out / "deap_small", size, face_segments=15)
autocasts = ("off", "bf16", "fp16") if device == "cuda" else ("off",)
for stream_mb in (1e9, 0):   # in-memory parts, then streamed parts (what a DEAP-sized job uses)
    import cmkd.data.stream as st
    st.DEFAULT_STREAM_THRESHOLD_MB = stream_mb
    rows = b.throughput_compare(str(prep), batch_size=batch, steps=steps, device=device, autocasts=autocasts)
    for r in rows:
        print(json.dumps(r))
        gpu = f"; peak GPU {r['peak_gpu_mb']:.0f} MB (plain {r['plain_peak_gpu_mb']:.0f} MB)" if r.get("peak_gpu_mb") else ""
        print(f"{r['data_access']:6s} autocast={r['autocast']:4s}: project {r['project_samples_per_s']:.1f} seg/s, "
              f"plain {r['plain_samples_per_s']:.1f} seg/s, ratio {r['ratio']:.2f}{gpu}", flush=True)
PY

echo "== summary"
"$PY" - "$OUTDIR" "$SMOKE" "$(( $(date +%s) - T0 ))" <<'PY'
import json, sys
from pathlib import Path
out, smoke, wall = Path(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3])
def text(name):
    p = out / name
    return p.read_text() if p.is_file() else ""
import torch
a, b = text("cells_a.txt"), text("cells_b.txt")
summary = {
    "smoke_run_on_cpu": smoke,
    "card": (torch.cuda.get_device_name(0) if torch.cuda.is_available() else None),
    "nvidia_smi": text("gpu.txt").strip().splitlines()[:2],
    "torch": torch.__version__, "cuda": torch.version.cuda,
    "cells_ran": len([ln for ln in a.splitlines() if ln.strip()]),
    "rerun_bit_identical": bool(a.strip()) and a == b,
    "bf16_cells_ran": len([ln for ln in text("cells_bf16.txt").splitlines() if ln.strip()]),
    "throughput": [json.loads(ln) for ln in text("throughput.txt").splitlines() if ln.startswith("{")],
    "wall_s": wall,
}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
ok = summary["cells_ran"] == 4 and summary["bf16_cells_ran"] == 4 and len(summary["throughput"]) >= 2
print(f"gpu_check: {'complete' if ok else 'INCOMPLETE'} in {wall} s; every figure in {out}/gpu_check.json")
sys.exit(0 if ok else 1)
PY
