"""The validation part's model-selection trials, and the optional feedback hold-out.

Every run selects its best epoch on the validation part. A method that trains on validation data
(MKD's feedback phase, Zhang & Lu, Brain Sciences 2025, §3.3.2: "the updated teacher model
leverages validation data instead of training data") must select on validation trials it never
trained on. The split option ``feedback_fraction`` (``split.feedback_fraction``, or a track's or a
method's ``split``) holds that many of the validation trials out of model selection, for EVERY run
that uses the option -- so that all rows of one table (the MKD track sets it for the whole track)
select on the same trials, not only the feedback run. The paper says nothing of model selection
with feedback on validation data; the halving is our protocol (default fraction 0.5 on the MKD
track; ``null`` selects on the whole validation part, and a run that needs the hold-out -- MKD's
feedback -- is refused: no method rewrites the validation part, so every row of a table selects
on the same trials; the training loop checks that after the method's ``configure``).

Splitting BY TRIAL: trials are ordered by class (the label of their first segment; one class for
regression), then by trial key, and dealt out so that trial ``i`` of that order goes to the
feedback half when ``floor((i + 1) f) > floor(i f)`` (f = ``fraction``): alternately for
f = 0.5, the first trial to the selection half. Both halves keep the class ratio.

:func:`selection_record` is what ``metrics.json`` records under ``selection``: the number of
selection trials and segments and a hash of the sorted (subject, trial) ids, so that runs can be
shown to have selected on the same trials.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math

import numpy as np

from cmkd.data import labels as labels_mod
from cmkd.data import splits as splits_mod
from cmkd.errors import ConfigError, DataError

TRIAL_KEY = 1_000_000  # trial key = subject * TRIAL_KEY + trial


def check_fraction(v, where: str):
    """``None`` (no hold-out) or a number in (0, 1); a ConfigError naming ``where`` otherwise."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < float(v) < 1.0:
        raise ConfigError(f"{where}: must be null or a number in (0, 1), got {v!r}")
    return float(v)


def trial_groups(part) -> np.ndarray:
    """One trial key per segment of ``part``: ``part.groups`` when present, else runs of
    consecutive segment indices (``part.index``) numbered 0, 1, ..."""
    g = getattr(part, "groups", None)
    if g is not None:
        g = np.asarray(g)
        if len(g) != len(part):
            raise DataError(f"validation part: {len(g)} trial keys for {len(part)} segments")
        return g
    idx = np.asarray(part.index, dtype=np.int64)
    if len(idx) == 0:
        return idx
    order = np.argsort(idx, kind="stable")
    runs = np.concatenate([[0], np.cumsum(np.diff(idx[order]) != 1)])
    out = np.empty(len(idx), np.int64)
    out[order] = runs
    return out


def split_validation(part, fraction: float = 0.5, task: str = "classification") -> tuple[np.ndarray, np.ndarray]:
    """Split a validation part BY TRIAL into ``(feedback positions, selection positions)`` (the
    rule in the module docstring). Both halves must receive at least one trial."""
    groups = trial_groups(part)
    keys, first = np.unique(groups, return_index=True)
    if len(keys) < 2:
        raise DataError(f"validation part: {len(keys)} trial(s); the MKD feedback phase needs at least two "
                        "validation trials (one for the feedback, one for model selection)")
    y = np.asarray(part.y)
    cls = np.zeros(len(keys)) if task == "regression" else y[first]
    order = np.lexsort((keys, cls))
    fb_keys = [keys[j] for i, j in enumerate(order) if math.floor((i + 1) * fraction) > math.floor(i * fraction)]
    is_fb = np.isin(groups, np.asarray(fb_keys))
    fb, sel = np.flatnonzero(is_fb), np.flatnonzero(~is_fb)
    if len(fb) == 0 or len(sel) == 0:
        raise DataError(f"validation part: feedback_fraction {fraction} leaves a half without trials ({len(keys)} trials)")
    return fb, sel


def subset(part, pos: np.ndarray):
    """The segments of ``part`` at positions ``pos``, as a part of the same type."""
    import torch  # lazy: torch (the config check imports this module)

    t = torch.as_tensor(pos, dtype=torch.long)
    # a streamed array gives a streamed subset (nothing read into memory); an in-memory tensor is indexed
    fields = {"x": {k: (v.subset(pos) if hasattr(v, "subset") else v[t]) for k, v in part.x.items()},
              "y": part.y[t], "index": np.asarray(part.index)[pos]}
    groups = getattr(part, "groups", None)
    is_field = dataclasses.is_dataclass(part) and "groups" in {f.name for f in dataclasses.fields(part)}
    if is_field:
        fields["groups"] = None if groups is None else np.asarray(groups)[pos]
    out = dataclasses.replace(part, **fields) if dataclasses.is_dataclass(part) else type(part)(**fields)
    if groups is not None and not is_field:
        out.groups = np.asarray(groups)[pos]
    return out


def hold_out_feedback(parts: dict, subject, trial, fraction: float | None, task: str) -> dict:
    """With a ``fraction``: mark the validation segments with their trial keys, move the feedback
    share of the validation trials to ``parts["feedback"]`` and keep the rest as ``parts["val"]``
    (in place; returns ``parts``). Without: ``parts`` unchanged."""
    if fraction is None:
        return parts
    val = parts["val"]
    idx = np.asarray(val.index)
    val.groups = np.asarray(subject)[idx].astype(np.int64) * TRIAL_KEY + np.asarray(trial)[idx].astype(np.int64)
    fb, sel = split_validation(val, fraction, task)
    parts["feedback"] = subset(val, fb)
    parts["val"] = subset(val, sel)
    return parts


def _trial_ids(idx, subject, trial) -> list[tuple[int, int]]:
    idx = np.asarray(idx, dtype=np.int64)
    return sorted({(int(s), int(t)) for s, t in zip(np.asarray(subject)[idx], np.asarray(trial)[idx])})


def trials_sha256(idx, subject, trial) -> str:
    """SHA-256 of the sorted (subject, trial) ids of the segments ``idx``: the identity of a set
    of validation trials (provenance ``val_hash``: its first 16 hex digits)."""
    return hashlib.sha256(np.asarray(_trial_ids(idx, subject, trial), dtype=np.int64).reshape(-1, 2).tobytes()).hexdigest()


def selection_record(part, subject, trial, fraction: float | None) -> dict:
    """``{"feedback_fraction", "n_trials", "n_segments", "trials_sha256"}`` of the selection part
    (the hash over the sorted (subject, trial) ids of its segments)."""
    idx = np.asarray(part.index)
    return {"feedback_fraction": fraction, "n_trials": len(_trial_ids(idx, subject, trial)), "n_segments": int(len(idx)),
            "trials_sha256": trials_sha256(idx, subject, trial)}


@dataclasses.dataclass
class _Labels:
    """A validation part reduced to what :func:`split_validation` reads (labels, index, trial keys)."""
    y: np.ndarray
    index: np.ndarray
    groups: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


def validation_hashes(prep, spec: dict) -> list[str]:
    """The ``val_hash`` of every split of a run (one per fold for k-fold and LOSO runs), computed
    from the prepared arrays and the run spec alone, as the training loop selects: the run's split
    (:func:`cmkd.data.splits.run_splits`), less the split's feedback hold-out. Torch-free: the
    contract test compares these over the rows of a table, and the loop checks that no method
    changes the part it selects on."""
    dim = spec["dimension_spec"]
    task = dim.get("task", "classification")
    y = labels_mod.targets(prep, dim.get("target", spec["dimension"]), task, float(dim.get("threshold", 5.0)),
                           tie=dim.get("tie", "low"))
    subject, trial = np.asarray(prep["subject"]), np.asarray(prep["trial"])
    frac = check_fraction(spec["split"].get("feedback_fraction"), "split.feedback_fraction")
    out = []
    for split in splits_mod.run_splits(prep, int(spec["seed"]), spec["split"], y, task):
        idx = np.asarray(split["val"], dtype=np.int64)
        if frac is not None:
            part = _Labels(y=y[idx], index=idx, groups=subject[idx].astype(np.int64) * TRIAL_KEY + trial[idx])
            idx = idx[split_validation(part, frac, task)[1]]
        out.append(trials_sha256(idx, subject, trial)[:16])
    return out
