"""The student network of the CGAN baseline of the MKD comparison (seed 004 §4.4, Table 1): an
encoder of the student's modality (EOG), a generator of the missing modality's (EEG) features
conditioned on the student's features, and a classifier over both. Trained by
:class:`cmkd.methods.cgan.CGAN` (the discriminator belongs to the method, not to this network).

Seed 004 says of the CGAN baseline only that it "employs knowledge transfer techniques" and
"overlooks the extraction and integration of heterogeneous features for each modality"; the
network below is the project's reconstruction of a conditional GAN (Mirza & Osindero 2014) that
generates the features of the modality missing at test time, not the authors' network.

Forward (one batch, the student's modality only; no EEG array is read)::

    c     = E(x_eog)                     the configured encoder of the modality (encoders.eog)
    z     ~ N(0, I) in training mode; z = 0 (the prior's mean) in eval mode, so that evaluation
            is deterministic
    x_gen = G(z | c) = MLP([c, z])      (B, eeg_dim): the generated EEG features
    logits, embedding = head([c, x_gen])

Model keys (``methods.<name>.model``): ``eeg_dim`` (the width of the teacher's EEG feature the
generator imitates: the MKD teacher's ``d_model``, 16 in the default, 256 at the paper's sizes),
``noise_dim`` (8), ``gen_hidden`` (64: one hidden ReLU layer of the generator).

Features: ``<modality>`` (c), ``generated`` (x_gen), ``noise`` (z), ``fused`` ([c, x_gen]),
``embedding``, ``hint`` / ``hint_<modality>`` (the encoder's map).
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from cmkd.errors import ConfigError, DataError
from cmkd.models.base import Output
from cmkd.models.face_eeg import _classify, _encoder, _head, _model_cfg, _n_outputs

DEFAULTS = {"eeg_dim": 16, "noise_dim": 8, "gen_hidden": 64}


class CGANStudentNet(nn.Module):
    """Encoder of one modality + conditional generator of the missing modality's features +
    classifier over both (see the module docstring)."""

    def __init__(self, spec: Mapping, where: str = "models"):
        super().__init__()
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: the model spec must be a mapping")
        mods = spec.get("modalities")
        mods = [mods] if isinstance(mods, str) else list(mods or [])
        if len(mods) != 1:
            raise ConfigError(f"{where}.modalities: the CGAN student reads one modality (the student's), got {mods!r}")
        self.modality = mods[0]
        self.modalities = mods
        self.n_outputs = _n_outputs(spec, where)
        self.config = _model_cfg(spec, where, dict(DEFAULTS))
        self.encoder = _encoder(spec, self.modality, where)
        d_c = int(self.encoder.out_dim)
        c = self.config
        self.generator = nn.Sequential(nn.Linear(d_c + c["noise_dim"], c["gen_hidden"]), nn.ReLU(),
                                       nn.Linear(c["gen_hidden"], c["eeg_dim"]))
        self.head = _head(d_c + c["eeg_dim"], spec, self.n_outputs, where)
        self.spec = dict(spec)

    def generate(self, cond: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``G(z | c)``: the generated features for conditions ``cond`` (B, D_c) and noise (B, noise_dim)."""
        return self.generator(torch.cat([cond, noise], dim=1))

    def forward(self, batch: Mapping[str, torch.Tensor]) -> Output:
        if self.modality not in batch:
            raise DataError(f"batch has no {self.modality!r} array; the model reads {self.modalities}")
        cond, hint = self.encoder(batch[self.modality])
        shape = (cond.shape[0], self.config["noise_dim"])
        noise = torch.randn(shape, device=cond.device, dtype=cond.dtype) if self.training \
            else torch.zeros(shape, device=cond.device, dtype=cond.dtype)
        gen = self.generate(cond, noise)
        fused = torch.cat([cond, gen], dim=1)
        logits, emb = _classify(self.head, fused)
        return Output(logits, {self.modality: cond, "generated": gen, "noise": noise, "fused": fused,
                               "embedding": emb, "hint": hint, f"hint_{self.modality}": hint})


ARCHITECTURES = {"cgan_student": CGANStudentNet}
