"""Train a few default-config runs on a small synthetic set and print a digest of each result
(test metrics, history, weights): the same digests before and after a change of the data path
mean the same batches, order and numbers. Usage:
    python scripts/scale_check_runs.py OUT_DIR [training overrides as key=value ...]
"""
import hashlib
import json
import os
import sys
from pathlib import Path

import torch
import yaml

from cmkd import train
from cmkd.config import run_spec
from cmkd.data.synthetic import write_synthetic

out = Path(sys.argv[1])
over = dict(kv.split("=", 1) for kv in sys.argv[2:])
cfg = yaml.safe_load(open(Path(__file__).resolve().parents[1] / "config.yaml"))
params = dict(cfg["datasets"]["synthetic"]["params"], n_subjects=6, n_trials=8)
prep = write_synthetic(out / "prepared", params, 0)
cfg["training"]["max_epochs"] = 2
cfg["threads"] = 1
cfg["device"] = os.environ.get("CMKD_CHECK_DEVICE", cfg.get("device", "auto"))  # gpu_check.sh: cuda (or cpu for its smoke run)
for k, v in over.items():
    cfg["training"][k] = yaml.safe_load(v)
cells = [("face_eeg-to-face", "arousal", "teacher"), ("face_eeg-to-face", "arousal", "kd"),
         ("eeg_eog-to-eog", "arousal", "mkd_teacher"), ("eeg_eog-to-eog", "arousal", "mkd_student")]
for track, dim, method in cells:
    spec = run_spec(cfg, "synthetic", track, dim, method, 0)
    spec["prepared"] = str(prep)
    for role, req in spec["requires"].items():
        req["dir"] = str(out / track / req["method"])
    d = out / track / method
    d.mkdir(parents=True, exist_ok=True)
    r = train.run(spec, d)
    ck = torch.load(d / "model.pt", weights_only=False)
    h = hashlib.sha256()
    for k, v in sorted(ck["state_dict"].items()):
        h.update(k.encode()); h.update(v.cpu().numpy().tobytes())
    hist = (d / "history.csv").read_text().splitlines()
    hist_h = hashlib.sha256("\n".join(l.rsplit(",", 1)[0] for l in hist).encode()).hexdigest()[:12]  # without time_s
    print(method, r["status"], json.dumps(r["test"], sort_keys=True), "weights", h.hexdigest()[:12], "history", hist_h,
          "data_access", r["provenance"].get("data_access"), "autocast", r["provenance"].get("autocast"), flush=True)
