"""The data side of a training run in torch: the split's parts in memory (standardised with the
training part's statistics), the model's input description, prediction and evaluation of a part,
and the checkpoints of the runs a run requires."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from cmkd import metrics
from cmkd.data import CONTINUOUS
from cmkd.data.stream import Part
from cmkd.errors import DataError


def load_checkpoint(run_dir: str | Path) -> dict:
    f = Path(run_dir) / "model.pt"
    if not f.exists():
        raise DataError(f"{f}: required checkpoint missing (train that run first)")
    try:
        ck = torch.load(f, map_location="cpu", weights_only=False)
    except Exception as e:
        raise DataError(f"{f}: cannot read checkpoint ({e})") from None
    if ck.get("status") == "failed":
        raise RequiredRunFailed(f"{f}: the required run failed ({ck.get('reason')})")
    return ck


class RequiredRunFailed(DataError):
    """A teacher/assistant this run needs has failed: this run is recorded as failed too."""


def build_parts(prep, modalities, y, split, task):
    """Gather each split part into memory and standardise continuous modalities with train statistics."""
    parts, norm = {}, {}
    train_idx = split["train"]
    for mod in modalities:
        if mod in CONTINUOUS:
            tr = np.asarray(prep[mod][train_idx], dtype=np.float32)
            axes = (0,) + tuple(range(2, tr.ndim))  # per channel / feature
            mean = tr.mean(axis=axes, keepdims=True)
            std = tr.std(axis=axes, keepdims=True)
            std[std < 1e-8] = 1.0
            norm[mod] = (mean, std)
    for part, idx in split.items():
        x = {}
        for mod in modalities:
            a = np.asarray(prep[mod][idx])
            if mod in norm:
                a = (a.astype(np.float32) - norm[mod][0]) / norm[mod][1]
            x[mod] = torch.from_numpy(np.ascontiguousarray(a))
        yy = torch.from_numpy(y[idx].astype(np.float32 if task == "regression" else np.int64))
        parts[part] = Part(x=x, y=yy, index=np.asarray(idx))
    return parts, {k: {"mean": v[0].reshape(-1).tolist(), "std": v[1].reshape(-1).tolist()} for k, v in norm.items()}


def model_inputs(prep, modalities) -> dict:
    info = {}
    for mod in modalities:
        shape = list(prep.meta["arrays"][mod]["shape"][1:])
        d = {"shape": shape}
        sr = prep.meta.get("sampling_rates", {}).get(mod)
        if sr:
            d["sampling_rate"] = sr
        ch = prep.meta.get("channels", {}).get(mod)
        if ch:
            d["channel_names"] = ch
        feats = (prep.meta.get("frame_features") or {}).get(mod)
        if feats:  # cached frozen features in place of the frames (cmkd.run.frame_features)
            d["features"] = dict(feats)
        info[mod] = d
    return info


@torch.no_grad()
def predict(model, part: Part, device, batch_size: int, keep_features: bool = False):
    model.eval()
    outs, feats = [], []
    for s in range(0, len(part), batch_size):
        idx = torch.arange(s, min(s + batch_size, len(part)))
        o = model(part.batch(idx, device))
        outs.append(o.logits.float().cpu())
        if keep_features:
            feats.append(o.features["embedding"].float().cpu())
    logits = torch.cat(outs).numpy() if outs else np.zeros((0, 1), np.float32)
    emb = torch.cat(feats).numpy() if feats else None
    return logits, emb


def evaluate(task, model, part, device, batch_size, keep_features=False):
    logits, emb = predict(model, part, device, batch_size, keep_features)
    y = part.y.numpy()
    out = logits.reshape(-1) if task == "regression" else logits
    m = metrics.compute(task, y, out)
    if task == "regression":
        m["loss"] = float(np.mean((out - y) ** 2)) if len(y) else math.nan
    else:
        t = torch.from_numpy(logits)
        m["loss"] = float(torch.nn.functional.cross_entropy(t, part.y).item()) if len(y) else math.nan
    return m, logits, emb
