"""The three-branch network of AMBOKD (Li et al. 2024); see :mod:`cmkd.models.face_eeg`."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from cmkd.errors import ConfigError
from cmkd.models.base import Output
from cmkd.models.face_eeg import EEG, VISUAL, _Base, _classify, _encoder, _get, _head, _model_cfg

class GradScale(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``holder[key]`` read *at backward
    time*, so a factor computed from this very forward's outputs (OGM-style gradient modulation)
    can be set between the forward and ``backward()``."""

    @staticmethod
    def forward(ctx, x, holder, key):
        ctx.holder, ctx.key = holder, key
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * float(ctx.holder[ctx.key]), None, None


class AMBOKDNet(_Base):
    """The three-branch network of AMBOKD (Li et al. 2024, "Adaptive modality balanced online
    knowledge distillation for brain-eye-computer based dim object detection", arXiv 2407.01894):
    a visual branch, an EEG branch, and a fusion branch that fuses the two modalities' features
    with multi-head attention ("establishing a new modality"); trained together online by
    :class:`cmkd.methods.ambokd.AMBOKD`.

    **The network's logits are the visual branch's only** (``features["logits_face"]`` is the same
    tensor): the model is evaluated and saved as the visual student of the face_eeg-to-face
    track. Without an ``eeg`` array in the batch, only the visual branch runs (deployment with
    video alone). With EEG, ``features`` also hold ``logits_eeg``, ``logits_fusion``.

    ``grad_scale`` (a dict modality -> factor, read at backward time, set by the method between
    forward and backward) scales the gradient reaching each encoder (the adaptive balancing of
    training gradients).
    """

    def __init__(self, spec: Mapping, where: str = "models"):
        super().__init__(spec, where)
        c = _model_cfg(spec, where, {"d": 32, "heads": 2})
        if c["d"] % c["heads"]:
            raise ConfigError(f"{where}.model.d: must be divisible by model.heads ({c['heads']}), got {c['d']}")
        self.encoders = nn.ModuleDict({m: _encoder(spec, m, where) for m in self.modalities})
        self.heads = nn.ModuleDict({m: _head(int(self.encoders[m].out_dim), spec, self.n_outputs, where)
                                    for m in self.modalities})
        self.proj = nn.ModuleDict({m: nn.Linear(int(self.encoders[m].out_dim), c["d"]) for m in self.modalities})
        self.mha = nn.MultiheadAttention(c["d"], c["heads"], batch_first=True)
        self.norm = nn.LayerNorm(c["d"])
        self.fusion_head = _head(c["d"], spec, self.n_outputs, where)
        self.grad_scale = {m: 1.0 for m in self.modalities}

    def forward(self, batch):
        zv, hint_v = self.encoders[VISUAL](_get(batch, VISUAL, self.modalities))
        zv_s = GradScale.apply(zv, self.grad_scale, VISUAL) if self.training else zv
        lv, emb = _classify(self.heads[VISUAL], zv_s)
        feats = {VISUAL: zv, "fused": zv, "embedding": emb, "hint": hint_v, f"hint_{VISUAL}": hint_v,
                 f"logits_{VISUAL}": lv}
        if EEG in batch:
            ze, hint_e = self.encoders[EEG](batch[EEG])
            ze_s = GradScale.apply(ze, self.grad_scale, EEG) if self.training else ze
            le, _ = _classify(self.heads[EEG], ze_s)
            toks = torch.stack([self.proj[VISUAL](zv_s), self.proj[EEG](ze_s)], dim=1)  # (B, 2, d)
            att, _ = self.mha(toks, toks, toks, need_weights=False)
            zf = self.norm(att + toks).mean(dim=1)
            lf, _ = _classify(self.fusion_head, zf)
            feats.update({EEG: ze, f"hint_{EEG}": hint_e, f"logits_{EEG}": le, "logits_fusion": lf, "fusion": zf})
        return Output(lv, feats)


ARCHITECTURES = {"ambokd": AMBOKDNet}
