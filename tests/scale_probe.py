"""Subprocess helper of tests/test_stream.py: prepare a synthetic set, read it as a training job
does, or train one run on it, and print this process's peak RSS (MiB, VmHWM) as the last line. Usage:
    python tests/scale_probe.py prepare OUT N_SUBJECTS
    python tests/scale_probe.py data PREPARED STREAM_THRESHOLD_MB
    python tests/scale_probe.py train PREPARED OUT [training overrides key=value ...]

``data`` is a training job's data path without the model: finite check, split, standardisation
statistics, parts, one epoch of training batches (background preparation) and one pass over the
validation and test parts.
"""
import resource
import sys
from pathlib import Path

import yaml

PARAMS = {"n_trials": 12, "segments_per_trial": 6, "face_size": 96, "face_frames": 3, "sampling_rate": 64}


def main() -> None:
    what = sys.argv[1]
    if what == "prepare":
        from cmkd.data.synthetic import write_synthetic

        write_synthetic(sys.argv[2], {**PARAMS, "n_subjects": int(sys.argv[3])}, 0)
    elif what == "data":
        import numpy as np
        import torch

        from cmkd import train
        from cmkd.data import labels, splits, stream
        from cmkd.data.prepared import check_finite, load_prepared

        prep = load_prepared(sys.argv[2])
        mods = ["face", "eeg"]
        check_finite(prep, mods)
        y = labels.targets(prep, "arousal", "classification", 5.0)
        split = splits.make_split(np.asarray(prep["subject"]), np.asarray(prep["trial"]), 0, stratify=y)
        parts, _, mode = stream.build_parts_auto(prep, mods, y, split, "classification",
                                                 {"stream_threshold_mb": float(sys.argv[3])}, "cpu", train.build_parts)
        perm = torch.randperm(len(parts["train"]), generator=torch.Generator().manual_seed(0))
        for _ in stream.iter_batches(parts["train"], [perm[s:s + 32] for s in range(0, len(perm), 32)], "cpu"):
            pass
        for name in ("val", "test"):
            n = len(parts[name])
            for s in range(0, n, 64):
                parts[name].batch(torch.arange(s, min(n, s + 64)), "cpu")
        print("data_access", mode)
    else:
        from cmkd import train
        from cmkd.config import run_spec

        cfg = yaml.safe_load(open(Path(__file__).resolve().parents[1] / "config.yaml"))
        cfg["training"].update(max_epochs=1, batch_size=32, eval_batch_size=64)
        for kv in sys.argv[4:]:
            k, v = kv.split("=", 1)
            cfg["training"][k] = yaml.safe_load(v)
        cfg["threads"] = 1
        spec = run_spec(cfg, "synthetic", "face_eeg-to-face", "arousal", "baseline", 0)
        spec["prepared"] = sys.argv[2]
        Path(sys.argv[3]).mkdir(parents=True, exist_ok=True)
        r = train.run(spec, sys.argv[3])
        assert r["status"] == "ok", r
        print("data_access", r["provenance"]["data_access"])
    print(peak_rss_mb())


def peak_rss_mb() -> float:
    """Peak RSS of this process image (VmHWM). Not ``ru_maxrss``: Linux carries a parent's maximum
    over fork and exec, so a child of a large test process would report the parent's peak."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
