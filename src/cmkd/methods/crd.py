"""Contrastive representation distillation (Tian, Krishnan & Isola 2020, "Contrastive
Representation Distillation", ICLR), cross-modal.

Objective (RepDistiller ``--distill crd -a 0 -b 0.8``;
the weights are the ``weights`` preset, ``paper`` by default, each value with its source in
this module's ``REGISTER`` and docs/kd_weights.md):

    L = gamma * CE(y, s) + alpha * KD + beta * L_CRD

``L_CRD`` is the NCE objective of Tian et al. eq. (18)-(19) in both directions (student anchor
against the teacher memory and teacher anchor against the student memory), as RepDistiller's
``CRDLoss`` (:func:`cmkd.losses.crd`, :class:`cmkd.losses.CRDMemory`):

- embedding heads ``g_s``, ``g_t``: ``Linear(D, feat_dim)`` followed by L2 normalisation
  (RepDistiller's ``Embed``), on the penultimate ``embedding`` of the student and of the teacher.
  Both heads belong to the method and are trained (the teacher's backbone stays frozen, its head
  ``embed_t`` is in :meth:`trainable_parameters`), as in CRD;
- a memory bank of one embedding per training sample for each side (``n_data`` = the size of the
  training part, from :meth:`configure`), momentum ``nce_m`` (0.5), temperature ``nce_t`` (0.07),
  indexed by ``batch["index"]`` (positions within the training part);
- ``K`` negatives per positive: ``nce_k`` (default 4096; RepDistiller uses 16384 on CIFAR-100's
  50 000 images) capped at ``n_data - 1``, so a small data set still gets a valid problem.
- which samples are negatives: ``negatives`` = ``class`` draws an anchor's negatives from the
  training samples of the *other classes* only (RepDistiller's training path,
  ``CIFAR100InstanceSample`` with ``mode='exact'``, and the CMCRD code do this; the CRD paper's
  eq. (18)-(19) draw from the data distribution); ``uniform`` draws from every other sample (about
  half of a binary task's "negatives" then share the anchor's class); ``auto`` (default) is
  ``class`` for classification and ``uniform`` for regression (no classes to avoid).

``feature`` (``embedding``) and ``teacher_feature`` (null: the same name) select the features
the heads read (e.g. ``fused``). The memory and heads are built in :meth:`configure`, which the
training loop calls with the data parts and the optimiser (the heads are added to it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cmkd import losses
from cmkd.errors import ConfigError
from cmkd.methods.zoo_common import ZooMethod, feature, where


class Embed(nn.Module):
    """``x -> normalise(W x + b)`` (RepDistiller's ``Embed``: linear projection + L2 norm)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, x):
        return F.normalize(self.linear(x.reshape(x.shape[0], -1)), dim=1)


class CRD(ZooMethod):
    name = "crd"

    def _check_params(self) -> None:
        super()._check_params()
        if self.params["negatives"] == "class" and self.task != "classification":
            raise ConfigError(f"{where(self, 'negatives')}: 'class' needs a classification dimension "
                              f"(task {self.task!r} has no classes); use 'uniform' or 'auto'")

    def __init__(self, student, teachers, params, task, n_classes):
        super().__init__(student, teachers, params, task, n_classes)
        self.embed_s = self.embed_t = self.memory = None  # built in configure()

    @property
    def class_aware(self) -> bool:
        """Whether negatives come from the other classes (``negatives``: ``class``, or ``auto`` on
        a classification dimension)."""
        mode = self.params["negatives"]
        return mode == "class" or (mode == "auto" and self.task == "classification")

    def _pair(self, s_out, t_out):
        p = self.params
        s = feature(s_out, p["feature"], where(self, "feature"), "student")
        t = feature(t_out, p["teacher_feature"] or p["feature"], where(self, "teacher_feature"), "teacher")
        return s.reshape(s.shape[0], -1), t.reshape(t.shape[0], -1).detach()

    def configure(self, parts=None, device=None, optimizer=None, **_):
        s_out, t_out = self.probe(parts, device)
        s, t = self._pair(s_out, t_out)
        n_data = len(parts["train"])
        if n_data < 2:
            raise ConfigError(f"{self.method_key}: the training part has {n_data} sample(s); CRD needs >= 2")
        p = self.params
        self.embed_s = Embed(s.shape[1], p["feat_dim"])
        self.embed_t = Embed(t.shape[1], p["feat_dim"])
        self.memory = losses.CRDMemory(n_data, p["feat_dim"], k=p["nce_k"], momentum=p["nce_m"])
        dev = device if device is not None else s.device
        for m in (self.embed_s, self.embed_t, self.memory):
            m.to(dev)
        if self.class_aware:
            y = parts["train"].y
            if torch.unique(y).numel() < 2:
                raise ConfigError(f"{where(self, 'negatives')}: class-aware negatives need two or more classes in "
                                  f"the training part, got {torch.unique(y).tolist()}; use 'uniform'")
            self.memory.set_labels(y)
        self.memory.train(self.training)
        self.add_to_optimizer(optimizer, self.embed_s)
        self.add_to_optimizer(optimizer, self.embed_t)

    def feature_terms(self, batch, s_out, t_out):
        if self.memory is None:
            raise RuntimeError("crd: call configure(parts=..., device=..., optimizer=...) before training "
                               "(it builds the heads and the memory)")
        s, t = self._pair(s_out, t_out)
        loss = losses.crd(self.embed_s(s), self.embed_t(t), batch["index"], self.memory,
                          temperature=self.params["nce_t"])
        return {"crd": self.params["beta"] * loss}


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "crd": {"roles": ["teacher"], "description": "Tian et al. 2020 contrastive representation distillation",
            "extends": ["zoo", "teacher_feature"],
            # beta around Tian et al.'s 0.8 (CIFAR-100): 0.08 to 8
            "search": {"beta": {"lo": 0.08, "hi": 8.0, "log": True}},
            "params": {"beta": {"default": 0.8, "lo": 0.0},
                       "feat_dim": {"default": 128, "kind": "int", "lo": 1},
                       "nce_k": {"default": 4096, "kind": "int", "lo": 1},
                       "nce_t": {"default": 0.07, "lo": 0.0, "lo_open": True},
                       "nce_m": {"default": 0.5, "lo": 0.0, "hi": 1.0},
                       "feature": {"default": "embedding", "kind": "str"},
                       "negatives": {"default": "auto", "kind": "choice", "choices": ["auto", "class", "uniform"]},
                       "weights": {"default": "paper", "kind": "choice", "choices": ["paper", "repdistiller", "previous"],
                        "doc": "preset of the loss weights: the method's paper, RepDistiller's CIFAR-100 commands, or the values run at 912213b"}},
            # paper: beta = 0.8 in L = CE + beta L_CRD, from the paper's own code, RepDistiller (README.md: "the
            # command for running CRD", -a 0 -b 0.8; scripts/run_cifar_distill.sh:29); sources in docs/kd_weights.md
            "presets": {"paper": {"beta": 0.8}, "repdistiller": {"beta": 0.8}, "previous": {"beta": 0.8}}},
}

METHODS = {"crd": CRD}
