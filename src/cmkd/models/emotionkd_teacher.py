"""EmotionKD's multimodal teacher (Liu et al. 2023), CDGKD Table 3; see :mod:`cmkd.models.face_eeg`."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from cmkd.errors import ConfigError
from cmkd.models.base import Output
from cmkd.models.face_eeg import EEG, VISUAL, _Base, _classify, _encoder, _get, _head, _model_cfg, tokens

class CrossModalFusion(nn.Module):
    """One interactivity block of EmotionKD's IMF module: cross-attention between the two
    modalities' heterogeneity features of consecutive depths, both directions, summed.

    ``f(v_k, e_k, v_{k+1}, e_{k+1}) = pool(MHA(q=v_k, kv=e_{k+1})) + pool(MHA(q=e_k, kv=v_{k+1}))``."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.v2e = nn.MultiheadAttention(d, heads, batch_first=True)
        self.e2v = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm = nn.LayerNorm(d)

    def forward(self, v_k, e_k, v_next, e_next) -> torch.Tensor:
        a, _ = self.v2e(v_k, e_next, e_next, need_weights=False)
        b, _ = self.e2v(e_k, v_next, v_next, need_weights=False)
        return self.norm(a.mean(dim=1) + b.mean(dim=1))


class EmotionKDTeacherNet(_Base):
    """EmotionKD's multimodal teacher, EmotionNet-Teacher (Liu, Jia & Wang 2023, "EmotionKD: a
    cross-modal knowledge distillation framework for emotion recognition based on physiological
    signals", ACM MM, §3 and the released ``Buildmodel.get_MultiModal_model``), with the visual
    modality in place of GSR.

    - heterogeneity: per modality, a head (the configured encoder, its feature map as tokens,
      projected to ``model.d``) and a transformer feature extractor of 3 layers whose three
      outputs ``h_1, h_2, h_3`` are kept (the released code's depth features);
    - interactivity (IMF): ``att = IMF(e_1, v_1, e_2, v_2) + IMF(e_2, v_2, e_3, v_3)`` with
      :class:`CrossModalFusion` blocks (the released code sums two ``MultiModalFusion`` outputs);
    - the IMF feature ``fused`` is classified by the configured head; it is the intermediate
      feature the EmotionKD student matches (``features["fused"]``).

    Simplifications: the released ``MultiModalFusion`` layer's exact attention form is replaced
    by standard multi-head cross-attention (documented in :class:`CrossModalFusion`); ``d`` 32,
    ``heads`` 2 and 3 transformer layers at small scale.
    """

    def __init__(self, spec: Mapping, where: str = "models"):
        super().__init__(spec, where)
        c = _model_cfg(spec, where, {"d": 32, "heads": 2, "depth": 3})
        if c["d"] % c["heads"]:
            raise ConfigError(f"{where}.model.d: must be divisible by model.heads ({c['heads']}), got {c['d']}")
        if c["depth"] < 3:
            raise ConfigError(f"{where}.model.depth: must be >= 3 (IMF reads depths 1-3), got {c['depth']}")
        self.encoders = nn.ModuleDict({m: _encoder(spec, m, where) for m in self.modalities})
        self.proj = nn.ModuleDict({m: nn.Linear(self._hint_channels(m), c["d"]) for m in self.modalities})
        self.pos = nn.ParameterDict({m: nn.Parameter(torch.zeros(1, 64, c["d"])) for m in self.modalities})
        self.blocks = nn.ModuleDict({
            m: nn.ModuleList(nn.TransformerEncoderLayer(c["d"], c["heads"], 2 * c["d"], dropout=0.1, batch_first=True)
                             for _ in range(c["depth"]))
            for m in self.modalities})
        self.imf = nn.ModuleList([CrossModalFusion(c["d"], c["heads"]) for _ in range(2)])
        self.head = _head(c["d"], spec, self.n_outputs, where)

    def _hint_channels(self, m: str) -> int:
        info = self.spec["inputs"][m]
        dtype = torch.uint8 if m == VISUAL else torch.float32
        enc = self.encoders[m]
        with torch.no_grad():
            was = enc.training
            enc.eval()
            _, hint = enc(torch.zeros(2, *info["shape"], dtype=dtype))
            enc.train(was)
        if tokens(hint).shape[1] > 64:
            raise ConfigError(f"{self.spec.get('where', 'models')}.{m}: feature map of {tokens(hint).shape[1]} tokens "
                              "is longer than the 64 positions of the EmotionKD teacher")
        return int(hint.shape[1])

    def forward(self, batch):
        depth_feats, vecs, hints = {}, {}, {}
        for m in self.modalities:
            f, hint = self.encoders[m](_get(batch, m, self.modalities))
            hints[m] = hint
            x = self.proj[m](tokens(hint))
            x = x + self.pos[m][:, : x.shape[1]]
            outs = []
            for blk in self.blocks[m]:
                x = blk(x)
                outs.append(x)
            depth_feats[m] = outs[-3:]
            vecs[m] = outs[-1].mean(dim=1)
        v, e = depth_feats[VISUAL], depth_feats[EEG]
        fused = self.imf[0](e[0], v[0], e[1], v[1]) + self.imf[1](e[1], v[1], e[2], v[2])
        logits, emb = _classify(self.head, fused)
        return Output(logits, {VISUAL: vecs[VISUAL], EEG: vecs[EEG], "fused": fused, "embedding": emb,
                               "hint": hints[VISUAL], f"hint_{VISUAL}": hints[VISUAL], f"hint_{EEG}": hints[EEG]})


ARCHITECTURES = {"emotionkd_teacher": EmotionKDTeacherNet}
