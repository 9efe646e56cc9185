"""What the multimodal (visual + EEG) architectures share: the CDGKD Table 3 teachers
(:mod:`cmkd.models.cnn_svm`, :mod:`cmkd.models.cnn_lstm`, :mod:`cmkd.models.dgc_jca`,
:mod:`cmkd.models.emotionkd_teacher`) and the AMBOKD network (:mod:`cmkd.models.ambokd_net`).

Each is registered through :data:`cmkd.models.registry.EXTRA_MODULES` as a whole architecture; a
config method entry selects one with ``architecture: <name>`` and tunes it with ``model: {...}``.
Every network reads ``batch["face"]`` (B, F, 3, H, W) and ``batch["eeg"]`` (B, C, T) and returns
:class:`cmkd.models.base.Output` with ``features`` ``face``, ``eeg`` (per-modality vectors),
``fused`` (the vector the classifier reads), ``embedding`` (the penultimate vector) and ``hint``.

All are small-scale re-implementations from the papers' descriptions (none of the four released
a PyTorch model for visual + EEG); every simplification is written in the class docstring.
The visual and EEG encoders are the configured ones (``encoders.face``, ``encoders.eeg``), so
that the baselines differ from the CDGKD teacher in fusion, not in backbone, except where the
paper's architecture needs another EEG representation (DGC+JCA: per-channel band powers).

Architectures (``architecture:`` name -> class):

- ``cnn_svm``   -> :class:`cmkd.models.cnn_svm.CNNSVMNet`   (Huang et al. 2019, decision-level fusion)
- ``cnn_lstm``  -> :class:`cmkd.models.cnn_lstm.CNNLSTMNet`  (Saffaryazdi et al. 2022)
- ``dgc_jca``   -> :class:`cmkd.models.dgc_jca.DGCJCANet`   (Cheng et al. 2024, dense graph conv + joint cross-attention)
- ``emotionkd_teacher`` -> :class:`cmkd.models.emotionkd_teacher.EmotionKDTeacherNet` (Liu et al. 2023, heterogeneity + IMF)
- ``ambokd``    -> :class:`cmkd.models.ambokd_net.AMBOKDNet`   (Li et al. 2024, visual, EEG and fusion branches)
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from cmkd.errors import ConfigError, DataError
from cmkd.models import registry
from cmkd.params import resolve

VISUAL, EEG = "face", "eeg"


# ------------------------------------------------------------------------------ helpers
def _model_cfg(spec: Mapping, where: str, defaults: dict) -> dict:
    out = resolve(spec.get("model"), defaults, f"{where}.model")
    for k, v in out.items():
        if isinstance(defaults[k], bool):
            if not isinstance(v, bool):
                raise ConfigError(f"{where}.model.{k}: must be true or false, got {v!r}")
        elif isinstance(defaults[k], int):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{where}.model.{k}: must be a positive integer, got {v!r}")
        elif isinstance(defaults[k], float):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
                raise ConfigError(f"{where}.model.{k}: must be a number in [0, 1), got {v!r}")
            out[k] = float(v)
    return out


def _check_modalities(spec: Mapping, where: str) -> None:
    mods = spec.get("modalities")
    if isinstance(mods, str):
        mods = [mods]
    if sorted(mods or []) != sorted([VISUAL, EEG]):
        raise ConfigError(f"{where}.modalities: this architecture takes exactly [face, eeg] (modalities: teacher "
                          f"on the face_eeg-to-face track), got {mods!r}")


def _encoder(spec: Mapping, mod: str, where: str) -> nn.Module:
    cfg = (spec.get("encoders") or {}).get(mod)
    if not isinstance(cfg, Mapping) or not isinstance(cfg.get("name"), str):
        raise ConfigError(f"{where}.{mod}.name: no encoder named for modality {mod!r}")
    info = (spec.get("inputs") or {}).get(mod)
    if info is None:
        raise ConfigError(f"inputs.{mod}: no input description (shape, ...) for modality {mod!r}")
    return registry.build_encoder(cfg["name"], cfg, info, where=f"{where}.{mod}", info_where=f"inputs.{mod}")


def _head(in_dim: int, spec: Mapping, n_outputs: int, where: str) -> nn.Sequential:
    h = registry.head_config(spec.get("head"), where=f"{where}.head")
    if h["hidden"]:
        return nn.Sequential(nn.Linear(in_dim, h["hidden"]), nn.ReLU(), nn.Dropout(h["dropout"]),
                             nn.Linear(h["hidden"], n_outputs))
    return nn.Sequential(nn.Dropout(h["dropout"]), nn.Linear(in_dim, n_outputs))


def _classify(head: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, embedding): the embedding is the head's hidden activation (or its input)."""
    if len(head) == 4:
        emb = head[1](head[0](x))
        return head[3](head[2](emb)), emb
    return head(x), x


def _n_outputs(spec: Mapping, where: str) -> int:
    return registry.pos_int(spec.get("n_outputs"), f"{where}.n_outputs")


def _get(batch: Mapping, mod: str, names) -> torch.Tensor:
    if mod not in batch:
        raise DataError(f"batch has no {mod!r} array; the model reads {list(names)}")
    return batch[mod]


def tokens(hint: torch.Tensor) -> torch.Tensor:
    """A feature map (B, C, ...) as a token sequence (B, L, C); a (B, C) vector is one token."""
    if hint.dim() == 2:
        return hint.unsqueeze(1)
    return hint.flatten(2).transpose(1, 2)


class _Base(nn.Module):
    def __init__(self, spec: Mapping, where: str):
        super().__init__()
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: the model spec must be a mapping")
        _check_modalities(spec, where)
        self.modalities = [VISUAL, EEG]
        self.n_outputs = _n_outputs(spec, where)
        self.spec = dict(spec)
