"""MultiModalNet: one encoder per modality, concatenation fusion, and a small head.

The spec is a JSON-able dict (the training code builds it from the config and the data)::

    {"modalities": ["face", "eeg"],
     "encoders": {"face": {"name": "timm", "arch": "test_vit", "img_size": 32,
                           "pretrained_path": None},
                  "eeg": {"name": "tsception", "num_T": 15, "num_S": 15}},
     "inputs": {"eeg": {"shape": [32, 256], "sampling_rate": 64, "channel_names": [...]},
                "face": {"shape": [2, 3, 32, 32]}},
     "head": {"hidden": 64, "dropout": 0.5},
     "fusion": "concat",            # optional; the only fusion so far
     "n_outputs": 2}                # 2: binary classification; 1: regression

With one modality it is that modality's unimodal network (the baseline student); with a
TSception encoder and ``head = {"hidden": 32, "dropout": 0.5}`` it is exactly the TSception paper
network.

``forward(batch)`` reads ``batch[modality]`` for each modality (other keys are ignored) and returns
:class:`Output` with ``logits`` ``(B, n_outputs)`` and ``features``:

- ``embedding``: ``(B, hidden)``, the head's hidden activation (after ReLU, before dropout), i.e.
  the representation the head's last Linear reads; with ``head.hidden = 0`` (a single Linear) it
  is the fused vector;
- ``fused``: ``(B, sum of out_dim)``, the concatenation of the modality features, in
  ``modalities`` order;
- ``<modality>``: that encoder's feature ``(B, out_dim)``;
- ``hint``: the first modality's hint; ``hint_<modality>``: each encoder's hint ``(B, C, ...)``.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch
from torch import nn

from cmkd.errors import ConfigError, DataError
from cmkd.models.base import Output
from cmkd.models.value_checks import pos_int

#: the fusions a spec may name (``fusion``)
FUSIONS = ("concat",)


class MultiModalNet(nn.Module):
    """Encoders per modality -> concatenation -> Linear -> ReLU -> Dropout -> Linear.

    ``build_encoder`` and ``head_config`` are the encoder registry's
    (:func:`cmkd.models.registry.build_encoder`, :func:`cmkd.models.registry.head_config`): the
    registry builds this network as its default architecture (:func:`cmkd.models.registry.build_model`),
    so this module does not import it.
    """

    def __init__(self, spec: Mapping, where: str = "models", *, build_encoder: Callable[..., nn.Module],
                 head_config: Callable[..., dict]):
        super().__init__()
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: the model spec must be a mapping, got {type(spec).__name__}")
        modalities = spec.get("modalities")
        if isinstance(modalities, str):
            modalities = [modalities]
        if (not isinstance(modalities, (list, tuple)) or not modalities
                or not all(isinstance(m, str) and m for m in modalities)):
            raise ConfigError(f"{where}.modalities: must be a non-empty list of modality names, "
                              f"got {modalities!r}")
        for m in modalities:
            if m in ("embedding", "fused", "hint") or m.startswith("hint_"):
                raise ConfigError(f"{where}.modalities: {m!r} is a reserved feature name")
        if len(set(modalities)) != len(modalities):
            raise ConfigError(f"{where}.modalities: a modality is listed twice: {modalities!r}")
        fusion = spec.get("fusion", "concat")
        if fusion not in FUSIONS:
            raise ConfigError(f"{where}.fusion: must be one of {list(FUSIONS)}, "
                              f"got {fusion!r}")
        n_outputs = pos_int(spec.get("n_outputs"), f"{where}.n_outputs")
        encoders_cfg = spec.get("encoders") or {}
        inputs = spec.get("inputs") or {}
        self.modalities = list(modalities)
        self.encoders = nn.ModuleDict()
        for m in self.modalities:
            cfg = encoders_cfg.get(m)
            if not isinstance(cfg, Mapping) or not isinstance(cfg.get("name"), str):
                raise ConfigError(f"{where}.{m}.name: no encoder named for modality {m!r}")
            if m not in inputs:
                raise ConfigError(f"inputs.{m}: no input description (shape, ...) for modality "
                                  f"{m!r}")
            self.encoders[m] = build_encoder(cfg["name"], cfg, inputs[m], where=f"{where}.{m}",
                                             info_where=f"inputs.{m}")
        head = head_config(spec.get("head"), where=f"{where}.head")
        self.fused_dim = sum(int(e.out_dim) for e in self.encoders.values())
        self.n_outputs = n_outputs
        self.embedding_dim = head["hidden"] or self.fused_dim
        if head["hidden"]:
            self.head = nn.Sequential(nn.Linear(self.fused_dim, head["hidden"]), nn.ReLU(),
                                      nn.Dropout(head["dropout"]),
                                      nn.Linear(head["hidden"], n_outputs))
        else:
            self.head = nn.Sequential(nn.Dropout(head["dropout"]),
                                      nn.Linear(self.fused_dim, n_outputs))
        self.spec = dict(spec)

    def classify(self, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the head to a fused vector: ``(logits, embedding)``."""
        if len(self.head) == 4:
            embedding = self.head[1](self.head[0](fused))
            return self.head[3](self.head[2](embedding)), embedding
        return self.head(fused), fused

    def forward(self, batch: Mapping[str, torch.Tensor]) -> Output:
        features: dict[str, torch.Tensor] = {}
        feats = []
        for m in self.modalities:
            if m not in batch:
                raise DataError(f"batch has no {m!r} array; the model reads {self.modalities}")
            feat, hint = self.encoders[m](batch[m])
            features[m] = feat
            features[f"hint_{m}"] = hint
            feats.append(feat)
        fused = feats[0] if len(feats) == 1 else torch.cat(feats, dim=1)
        logits, embedding = self.classify(fused)
        features["embedding"] = embedding
        features["fused"] = fused
        features["hint"] = features[f"hint_{self.modalities[0]}"]
        return Output(logits, features)
