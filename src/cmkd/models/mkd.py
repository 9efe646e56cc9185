"""MKD networks: the dual-stream transformer EEG+EOG teacher with the IMF fusion module, and the
EOG student with the HDF module ("Multimodal Knowledge Distillation for Emotion Recognition",
Zhang & Lu, Brain Sciences 2025, 15(7):707; §3.1 teacher, §3.2 student, §4.3 sizes).

Registered as whole architectures (``architecture: mkd_teacher`` / ``mkd_student`` in a method
entry; settings under the entry's ``model``). They build their own front-ends from ``model`` and
ignore the per-modality ``encoders`` of the config; the classifier reads the config's ``head``.

One modality stream (§3.1, shared by teacher and student, so the student is structurally aligned
with the teacher's stream of its modality):

1. ``CNN(ch1, f1)(CNN(ch2, f2)(X))`` (§3.1, the filter equation): the inner convolution has kernel
   ``(1, kernel)`` (temporal, ``ch2 = 1``, ``f2 = kernel``), the outer one kernel ``(C, 1)``
   (spatial over all ``C`` channels, ``ch1 = C``, ``f1 = 1``); BatchNorm, ELU, dropout (§4.3: every
   convolutional layer has dropout); the time axis is average-pooled to ``tokens`` tokens of
   width ``d_model`` (our choice: the paper does not say how the maps become tokens);
2. a learnable positional embedding and ``stream_layers`` transformer encoder layers (§3.1.1,
   multi-head attention, written out here so that the feedback phase can differentiate twice).
   The outputs of the layers are the stream's *heterogeneous features* ``X_1 ... X_n``
   (``(B, tokens, d_model)`` each).

Teacher (``mkd_teacher``, two or more modalities: one stream each, the "dual-stream" encoder):

- IMF (§3.1.2): at each fused position ``l`` (``imf_positions``, default the last two stream
  layers; the paper's four inputs ``X1^EOG, X2^EOG, X1^EEG, X2^EEG``), the interaction extractor
  ``IE_l`` gates the concatenation of the modalities' features:
  ``score = sigmoid(FC2(ReLU(FC1(x))))``, ``out = score * x``; the IE outputs are summed (⊕).
  FC1 has ``ie_hidden`` units (paper 1024; default 2x its input), FC2 the input width (paper 512
  = 2 x 256), so the gate is element-wise;
- a downstream transformer encoder (``fusion_layers``) over the fused tokens (§3.1.1: "processed
  by the downstream transformer encoder"), mean over tokens, the head.

Student (``mkd_student``, one modality): the same stream, then the HDF module (§3.2): three
heterogeneous extractors ``HE_k`` (same gate, FC1 ``he_hidden`` units, paper 512; FC2 the input
width, paper 256) over the stream outputs at ``hdf_positions`` (default: the last three stream
layers), summed (⊕), a downstream transformer encoder (``fusion_layers``, the student's copy of
the teacher's downstream encoder at the student's width), mean over tokens, the head.

Features (``Output.features``):

- both: ``embedding`` (the head's hidden activation), ``hetero_k_<modality>`` for
  k = 1..``stream_layers`` (the stream's layer outputs, ``(B, tokens, d_model)``), ``<modality>``
  (the last stream layer averaged over tokens), ``fused`` (pooled input of the head),
  ``hint`` (the last stream layer of the first modality, ``(B, d_model, tokens)``);
- teacher: ``hetero_k`` = the mean of ``hetero_k_<m>`` over its modalities;
  ``imf`` (the IMF output tokens);
- student: ``hetero_1..3`` = the HE outputs ``(B, tokens, d_model)``; ``hdf`` = their sum, the
  HDF output ``X_output^HDF`` (§3.2), which the MKD loss (§3.3.1, L_MSE, ``feature_target: imf``)
  aligns through a learned projection with the teacher's ``imf``.

Model keys (``methods.<name>.model``) and defaults (small, for the laptop default; the paper's
sizes are d_model 256, ie_hidden 1024, he_hidden 512):
``d_model`` 16, ``heads`` 2, ``ff_dim`` (null = 2 x d_model), ``stream_layers`` 3,
``fusion_layers`` 1, ``tokens`` 16, ``kernel`` 7 (odd), ``dropout`` 0.25,
``ie_hidden`` (null = 2 x input), ``he_hidden`` (null = 2 x input),
``imf_positions`` (null = last two layers), ``hdf_positions`` (null = last three layers).
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from cmkd.errors import ConfigError, DataError
from cmkd.params import resolve
from cmkd.models import registry
from cmkd.models.base import Output

MODEL_DEFAULTS = {
    "d_model": 16, "heads": 2, "ff_dim": None, "stream_layers": 3, "fusion_layers": 1, "tokens": 16,
    "kernel": 7, "dropout": 0.25, "ie_hidden": None, "he_hidden": None,
    "imf_positions": None, "hdf_positions": None,
}
RESERVED = ("embedding", "fused", "hint", "imf", "hdf")


# ----------------------------------------------------------------------------- building blocks
class GatedExtractor(nn.Module):
    """Interaction / heterogeneous extractor (§3.1.2 and §3.2):
    ``score = sigmoid(FC2(ReLU(FC1(x))))``, ``out = score * x`` (element-wise; FC2 has the input
    width). Acts on the last axis, so it applies token-wise to ``(B, L, D)``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(F.relu(self.fc1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(x) * x


class SelfAttention(nn.Module):
    """Multi-head self-attention (§3.1.1): ``Concat(head_1..head_h) W_O`` with
    ``head_m = softmax(Q W_m^Q (K W_m^K)^T / sqrt(d_k)) V W_m^V``. Plain matrix products (no fused
    kernel), so that second-order gradients (the feedback phase) are available everywhere."""

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__()
        self.h, self.dk = heads, d_model // heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.h, self.dk).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.dk), dim=-1)
        y = (self.drop(att) @ v).transpose(1, 2).reshape(b, n, d)
        return self.out(y)


class TransformerLayer(nn.Module):
    """Post-norm transformer encoder layer (Vaswani et al. 2017): attention and a ReLU
    feed-forward block, each with a residual connection and LayerNorm."""

    def __init__(self, d_model: int, heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.attn = SelfAttention(d_model, heads, dropout)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff_dim, d_model))
        self.n1, self.n2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.n1(x + self.drop(self.attn(x)))
        return self.n2(x + self.drop(self.ff(x)))


class Stream(nn.Module):
    """One modality's stream: the two convolutions of §3.1, tokens, positional embedding and
    ``n_layers`` transformer layers. ``forward`` returns the list of the layers' outputs."""

    def __init__(self, n_channels: int, n_samples: int, c: dict):
        super().__init__()
        d, k = c["d_model"], c["kernel"]
        if n_samples < c["tokens"]:
            raise ValueError(f"{n_samples} samples are fewer than tokens={c['tokens']}")
        self.conv = nn.Sequential(
            nn.Conv2d(1, d, (1, k), padding=(0, k // 2), bias=False),       # CNN(ch2 = 1, f2 = kernel)
            nn.BatchNorm2d(d), nn.ELU(), nn.Dropout(c["dropout"]),
            nn.Conv2d(d, d, (n_channels, 1), bias=False),                   # CNN(ch1 = C, f1 = 1)
            nn.BatchNorm2d(d), nn.ELU(), nn.Dropout(c["dropout"]),
        )
        self.pool = nn.AdaptiveAvgPool1d(c["tokens"])
        self.pos = nn.Parameter(torch.zeros(1, c["tokens"], d))
        nn.init.normal_(self.pos, std=0.02)
        self.layers = nn.ModuleList(TransformerLayer(d, c["heads"], c["ff_dim"], c["dropout"])
                                    for _ in range(c["stream_layers"]))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.conv(x.unsqueeze(1)).squeeze(2)          # (B, d, T)
        h = self.pool(h).transpose(1, 2) + self.pos       # (B, tokens, d)
        outs = []
        for layer in self.layers:
            h = layer(h)
            outs.append(h)
        return outs


# ----------------------------------------------------------------------------- config
def _positions(v, n_layers: int, default: list[int], key: str, count: int | None = None) -> list[int]:
    if v is None:
        return default
    if not isinstance(v, (list, tuple)) or not v or not all(registry._is_int(p) and 1 <= p <= n_layers for p in v):
        raise ConfigError(f"{key}: must be a non-empty list of layer numbers in [1, {n_layers}], got {v!r}")
    if len(set(v)) != len(v):
        raise ConfigError(f"{key}: a position is listed twice: {v!r}")
    if count is not None and len(v) != count:
        raise ConfigError(f"{key}: must list exactly {count} positions, got {v!r}")
    return [int(p) for p in v]


def model_config(model: Mapping | None, where: str = "methods.<mkd>.model") -> dict:
    """Validated model settings (unknown keys and bad values raise ConfigError naming the key)."""
    if model is None:
        model = {}
    if not isinstance(model, Mapping):
        raise ConfigError(f"{where}: must be a mapping of model settings, got {model!r}")
    c = resolve(model, MODEL_DEFAULTS, where)
    for k in ("d_model", "heads", "stream_layers", "tokens", "kernel"):
        c[k] = registry.pos_int(c[k], f"{where}.{k}")
    c["fusion_layers"] = registry.pos_int(c["fusion_layers"], f"{where}.fusion_layers", minimum=0)
    for k in ("ff_dim", "ie_hidden", "he_hidden"):
        c[k] = registry.pos_int(c[k], f"{where}.{k}", allow_none=True)
    c["ff_dim"] = c["ff_dim"] or 2 * c["d_model"]
    c["dropout"] = registry.probability(c["dropout"], f"{where}.dropout")
    if c["kernel"] % 2 != 1:
        raise ConfigError(f"{where}.kernel: must be odd (length-preserving), got {c['kernel']}")
    if c["d_model"] % c["heads"]:
        raise ConfigError(f"{where}.heads: must divide d_model={c['d_model']}, got {c['heads']}")
    n = c["stream_layers"]
    c["imf_positions"] = _positions(c["imf_positions"], n, list(range(max(1, n - 1), n + 1)), f"{where}.imf_positions")
    if c["hdf_positions"] is None and n < 3:
        raise ConfigError(f"{where}.stream_layers: the HDF module reads three positions; need >= 3 layers "
                          f"or set hdf_positions, got {n}")
    c["hdf_positions"] = _positions(c["hdf_positions"], n, list(range(n - 2, n + 1)), f"{where}.hdf_positions", count=3)
    return c


def _inputs(spec: Mapping, modalities: list[str], where: str) -> dict:
    inputs = spec.get("inputs") or {}
    out = {}
    for m in modalities:
        if m not in inputs:
            raise ConfigError(f"inputs.{m}: no input description (shape, ...) for modality {m!r}")
        shape = registry._shape(inputs[m], 2, f"inputs.{m}", "channels, samples")
        out[m] = shape
    return out


def _modalities(spec: Mapping, where: str) -> list[str]:
    mods = spec.get("modalities")
    if isinstance(mods, str):
        mods = [mods]
    if not isinstance(mods, (list, tuple)) or not mods or not all(isinstance(m, str) and m for m in mods):
        raise ConfigError(f"{where}.modalities: must be a non-empty list of modality names, got {mods!r}")
    if len(set(mods)) != len(mods):
        raise ConfigError(f"{where}.modalities: a modality is listed twice: {mods!r}")
    for m in mods:
        if m in RESERVED or m.startswith("hetero"):
            raise ConfigError(f"{where}.modalities: {m!r} is a reserved feature name")
    return list(mods)


class _Head(nn.Module):
    def __init__(self, dim: int, head: dict, n_outputs: int):
        super().__init__()
        self.hidden = head["hidden"]
        if self.hidden:
            self.fc1, self.drop, self.fc2 = nn.Linear(dim, self.hidden), nn.Dropout(head["dropout"]), nn.Linear(self.hidden, n_outputs)
        else:
            self.drop, self.fc2 = nn.Dropout(head["dropout"]), nn.Linear(dim, n_outputs)

    def forward(self, x):
        emb = F.relu(self.fc1(x)) if self.hidden else x
        return self.fc2(self.drop(emb)), emb


class MKDNet(nn.Module):
    """The teacher (several modalities, IMF fusion) or the student (one modality, HDF)."""

    def __init__(self, spec: Mapping, where: str, role: str):
        super().__init__()
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: the model spec must be a mapping, got {type(spec).__name__}")
        self.role = role
        self.modalities = _modalities(spec, where)
        if role == "teacher" and len(self.modalities) < 2:
            raise ConfigError(f"{where}.modalities: the mkd_teacher architecture fuses two or more modalities, got {self.modalities}")
        if role == "student" and len(self.modalities) != 1:
            raise ConfigError(f"{where}.modalities: the mkd_student architecture reads one modality, got {self.modalities}")
        mwhere = "methods.<" + ("mkd_teacher" if role == "teacher" else "mkd_student") + ">.model"
        c = model_config(spec.get("model"), mwhere)
        self.config = c
        n_outputs = registry.pos_int(spec.get("n_outputs"), f"{where}.n_outputs")
        shapes = _inputs(spec, self.modalities, where)
        d = c["d_model"]
        try:
            self.streams = nn.ModuleDict({m: Stream(shapes[m][0], shapes[m][1], c) for m in self.modalities})
        except ValueError as e:
            raise ConfigError(f"{mwhere}.tokens: {e}") from None
        if role == "teacher":
            width = d * len(self.modalities)
            self.extractors = nn.ModuleList(GatedExtractor(width, c["ie_hidden"] or 2 * width) for _ in c["imf_positions"])
        else:
            width = d
            self.extractors = nn.ModuleList(GatedExtractor(width, c["he_hidden"] or 2 * width) for _ in c["hdf_positions"])
        ff = c["ff_dim"] * width // d
        heads = c["heads"]
        self.fusion = nn.ModuleList(TransformerLayer(width, heads, ff, c["dropout"]) for _ in range(c["fusion_layers"]))
        self.head = _Head(width, registry.head_config(spec.get("head"), where=f"{where}.head"), n_outputs)
        self.width = width
        self.spec = dict(spec)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> Output:
        feats: dict[str, torch.Tensor] = {}
        layers = {}
        for m in self.modalities:
            if m not in batch:
                raise DataError(f"batch has no {m!r} array; the model reads {self.modalities}")
            layers[m] = self.streams[m](batch[m])
            for k, h in enumerate(layers[m], start=1):
                feats[f"hetero_{k}_{m}"] = h
            feats[m] = layers[m][-1].mean(dim=1)
        if self.role == "teacher":
            for k in range(1, self.config["stream_layers"] + 1):
                feats[f"hetero_{k}"] = torch.stack([feats[f"hetero_{k}_{m}"] for m in self.modalities]).mean(0)
            # IMF (§3.1.2): IE_1(Concat(X_1^EOG, X_1^EEG)) ⊕ IE_2(Concat(X_2^EOG, X_2^EEG))
            outs = [ie(torch.cat([layers[m][p - 1] for m in self.modalities], dim=-1))
                    for ie, p in zip(self.extractors, self.config["imf_positions"])]
            z = torch.stack(outs).sum(0)
            feats["imf"] = z
        else:
            m = self.modalities[0]
            # HDF (§3.2): HE_1(X_1) ⊕ HE_2(X_2) ⊕ HE_3(X_3)
            outs = [he(layers[m][p - 1]) for he, p in zip(self.extractors, self.config["hdf_positions"])]
            for k, o in enumerate(outs, start=1):
                feats[f"hetero_{k}"] = o
            z = torch.stack(outs).sum(0)
            feats["hdf"] = z
        for layer in self.fusion:
            z = layer(z)
        pooled = z.mean(dim=1)
        logits, emb = self.head(pooled)
        feats["fused"] = pooled
        feats["embedding"] = emb
        feats["hint"] = layers[self.modalities[0]][-1].transpose(1, 2)
        return Output(logits, feats)


def build_teacher(spec: Mapping, where: str = "models") -> MKDNet:
    return MKDNet(spec, where, "teacher")


def build_student(spec: Mapping, where: str = "models") -> MKDNet:
    return MKDNet(spec, where, "student")


ARCHITECTURES = {"mkd_teacher": build_teacher, "mkd_student": build_student}
