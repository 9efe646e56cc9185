"""Uncertainty-aware cross-modal KD with prototype learning (arXiv 2507.13092, visual -> EEG).

A frozen visual (face) teacher guides an EEG student. What seed 000 (the summary of the paper we
have) says: knowledge is transferred from the visual to the EEG modality with *prototype-based
similarity alignment* (class prototypes align the feature distributions across modalities) and a
*task-specific distillation head* (it aligns soft labels "while accounting for uncertainty"), with
*uncertainty-aware feature alignment* ("incorporating uncertainty measures into the alignment
process") and semantic consistency against label noise; its ablation studies "each loss
component". It gives no equations, no uncertainty measure and no weights. Everything below is
therefore the project's reading, marked (reading) where it goes beyond those words; the equation
tags ``(U1)``... are this module's:

- the uncertainty measure (U3) is the project's: seed 000 names none;
- the weights sit on the two alignment terms (U4, U5), the "uncertainty-aware feature alignment";
  the head term (U6) is unweighted, although the seed says the head aligns soft labels "while
  accounting for uncertainty" (reading: the teacher's soft labels at temperature ``T`` are the
  only uncertainty the head term carries; weighting it too is an open choice, not made here);
- "semantic consistency" is read as the prototype alignment (U4): the class prototypes carry the
  classes' semantics across the modalities (reading);
- the loss components of the ablation are the three terms (U4)-(U6) and the weights (U3); each
  has a switch (``proto``, ``feat``, ``head``, ``uncertainty``), all on by default (reading: the
  seed does not list the components its ablation drops).

Notation: ``z_t`` the teacher's intermediate feature (its encoder output, ``features["fused"]``,
the input of its head), ``z_s`` the student's (``features["fused"]``), ``g`` a trained
``Linear(D_s, D_t)`` adapter into the teacher's feature space, ``hat(x) = x / ||x||``, ``K`` the
number of prototypes.

- (U1) prototypes (reading): ``c_k = hat(mean_{i: class(i) = k} hat(z_t,i))`` over the *whole
  training part*, computed once in :meth:`UAProto.configure` (the teacher is frozen, so they are
  exact and deterministic, no running average). For classification the classes are the labels;
  for regression the targets in [0, 1] are cut into ``n_bins`` bins (:func:`bin_targets`). With
  the default ``n_bins = 2`` the bins are the binary labels themselves: the rating ``r = 1 + 8 y``
  is classed by :func:`cmkd.data.labels.binary` at ``bin_threshold`` (null: the dimension's
  ``threshold``, else 5) with the tie rule ``bin_tie`` (null: the dimension's ``tie``, else
  ``low``: a rating equal to the threshold is low, as the labels). With ``n_bins > 2``:
  equal-width bins of [0, 1], a target on an inner edge going to the lower bin (``low``) or the
  upper one (``high``). A class with no training sample has no prototype and is left out.
- (U2) similarities (reading): ``q_ik = cos(z_t,i, c_k) / tau`` (teacher),
  ``s_ik = cos(g(z_s,i), c_k) / tau`` (student), ``tau`` = ``params.tau`` (0.1).
- (U3) the per-sample uncertainty weight (reading; detached): ``w_i = 1 - H(softmax(q_i)) / log K``,
  one minus the normalised entropy of the teacher's prototype distribution of (U2), in ``[0, 1]``:
  1 when the teacher's feature is at one prototype and away from the others, 0 when it is equally
  close to all (an ambiguous sample). E.g. ``tau = 0.1``, cosines ``(0.95, -0.5)`` give
  ``w = 1 - 1.1e-5``; ``(0.9, 0.9)`` give ``w = 0``. ``uncertainty: false`` sets every
  ``w_i = 1`` (the ablation without uncertainty weights). The mean and the standard deviation of
  ``w`` over each batch are logged (``diag_ua_w_mean``, ``diag_ua_w_std`` in ``history.csv``,
  averaged over the epoch's batches).
- (U4) uncertainty-aware prototype alignment (``proto``):
  ``L_proto = 1/B sum_i w_i KL(softmax(q_i) || softmax(s_i))``.
- (U5) uncertainty-aware feature alignment (``feat``):
  ``L_feat = 1/B sum_i w_i (1 - cos(g(z_s,i), z_t,i))``.
- (U6) task-specific distillation head (``head``; reading: the head is the teacher's own):
  ``y_{t|s} = head_t(g(z_s))`` with the teacher's frozen head (in eval mode; gradient flows
  through it into ``g`` and the student); classification:
  ``L_head = T^2 KL(softmax(y_t / T) || softmax(y_{t|s} / T))`` (:func:`cmkd.losses.kd`, ``T`` =
  ``params.temperature``, 4); regression: ``L_head = MSE(y_{t|s}, y_t)``.
- (U7) ``L = L_task + [proto] lambda_proto L_proto + [feat] lambda_feat L_feat + [head] lambda_head L_head``,
  with ``L_task`` the student's own cross-entropy (classification) or MSE on [0, 1] targets
  (regression), and ``[x]`` 1 when the switch ``x`` is on, else 0; all lambdas 1 by default. A
  term whose switch is off (or whose lambda is 0) is not computed and is not a loss term at all
  (no ``train_<term>`` column in ``history.csv``); the other terms are unchanged.

An earlier version offered an evidential weight (subjective logic, Sensoy et al. 2018) with its own
temperature ``tau_u``; seed 000 names no evidential uncertainty, no grid row ran it, and it ranked
an ambiguous sample above a clear one (it grows with the total evidence, not with how it is
distributed), so it and ``tau_u`` (read by nothing else) are gone.

Rows of this method are labelled "reconstruction: the paper gives no equations" in the tables.

The teacher must be a :class:`cmkd.models.fusion.MultiModalNet` (it needs ``classify``, its head).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmkd import losses
from cmkd.data import labels as labels_mod
from cmkd.errors import ConfigError
from cmkd.methods.base import Method

TIES = ("low", "high")
TERMS = ("proto", "feat", "head")  # the switchable loss terms (U4)-(U6), each with its switch and lambda


# ----------------------------------------------------------------------------- pure functions
def _binary(ratings: np.ndarray, threshold: float, tie: str) -> np.ndarray:
    """The binary labels' rule (:func:`cmkd.data.labels.binary`) with the tie rule ``tie``."""
    if tie == "low":
        return labels_mod.binary(ratings, threshold=threshold)
    return labels_mod.binary(ratings, threshold=threshold, tie=tie)


def bin_targets(y: torch.Tensor, n_bins: int, threshold: float = 5.0, tie: str = "low") -> torch.Tensor:
    """Regression targets ``y = (r - 1) / 8`` in [0, 1] -> bin indices (long), the same rule as the
    binary labels.

    ``n_bins == 2``: the binary label of the rating ``r = 1 + 8 y`` at ``threshold`` with the tie
    rule ``tie`` (``low``: a rating equal to the threshold is low), by
    :func:`cmkd.data.labels.binary`. ``n_bins > 2``: equal-width bins of [0, 1]; a target on an
    inner edge goes to the lower bin (``low``) or the upper one (``high``).
    """
    if tie not in TIES:
        raise ValueError(f"bin_targets: tie must be one of {TIES}, got {tie!r}")
    yf = y.detach().to("cpu", torch.float64)
    if n_bins == 2:
        r = np.clip(np.round(1.0 + 8.0 * yf.numpy(), 6), 1.0, 9.0)  # undo float32 rounding of (r - 1) / 8
        return torch.from_numpy(_binary(r, threshold, tie)).long().to(y.device)
    x = torch.round(yf * n_bins * 1e6) / 1e6
    idx = torch.floor(x) if tie == "high" else torch.ceil(x) - 1
    return torch.clamp(idx, 0, n_bins - 1).long().to(y.device)


def class_prototypes(features: torch.Tensor, labels: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(U1): ``c_k = hat(mean hat(z_i))`` over the samples of class ``k``.

    Returns ``(prototypes (n_classes, D), present (n_classes,) bool)``; rows of absent classes are 0.
    """
    if features.dim() != 2 or labels.dim() != 1 or labels.shape[0] != features.shape[0]:
        raise ValueError(f"class_prototypes: features (N, D) and labels (N,), got {tuple(features.shape)}, {tuple(labels.shape)}")
    z = F.normalize(features.float(), dim=1)
    onehot = F.one_hot(labels.long(), n_classes).to(z.dtype)  # (N, K)
    counts = onehot.sum(dim=0)
    sums = onehot.t() @ z
    present = counts > 0
    protos = F.normalize(sums / counts.clamp(min=1).unsqueeze(1), dim=1)
    return protos * present.unsqueeze(1).to(z.dtype), present


def cosine_to_prototypes(features: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """``cos(z_i, c_k)``, shape (B, K)."""
    return F.normalize(features, dim=1) @ F.normalize(prototypes, dim=1).t()


def confidence_weights(sim: torch.Tensor) -> torch.Tensor:
    """(U3) ``w_i = 1 - H(softmax(sim_i)) / log K``: one minus the normalised Shannon entropy of
    each row's distribution over the ``K`` prototypes (``sim`` = ``q`` of (U2), cosines over
    ``tau``). In ``[0, 1]``; shape (B,). Reconstruction (the paper gives no equations)."""
    if sim.dim() != 2 or sim.shape[1] < 2:
        raise ValueError(f"confidence_weights: sim must be (B, K) with K >= 2, got {tuple(sim.shape)}")
    log_p = F.log_softmax(sim, dim=1)
    h = -(log_p.exp() * log_p).sum(dim=1)
    return (1.0 - h / math.log(sim.shape[1])).clamp(0.0, 1.0)


def prototype_alignment(student_sim: torch.Tensor, teacher_sim: torch.Tensor) -> torch.Tensor:
    """Per-sample ``KL(softmax(q_i) || softmax(s_i))`` (U4 before weighting), shape (B,)."""
    if student_sim.shape != teacher_sim.shape or student_sim.dim() != 2:
        raise ValueError(f"prototype_alignment: (B, K) similarities of equal shape expected, got "
                         f"{tuple(student_sim.shape)} and {tuple(teacher_sim.shape)}")
    log_q = F.log_softmax(teacher_sim, dim=1)
    log_s = F.log_softmax(student_sim, dim=1)
    return (log_q.exp() * (log_q - log_s)).sum(dim=1)


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``1/B sum_i w_i v_i``."""
    return (weights.to(values.dtype) * values).mean()


# ----------------------------------------------------------------------------- method
class UAProto(Method):
    """Uncertainty-aware prototype KD, (U1)-(U7) of the module docstring; the switches ``proto``,
    ``feat``, ``head`` and ``uncertainty`` drop one loss component each (the ablation rows)."""

    roles = ("teacher",)

    def _check_params(self) -> None:
        super()._check_params()
        p = self.params
        teacher = self.teachers.get("teacher")
        if teacher is None:
            raise ConfigError(f"{self.method_key}.requires.teacher: needs a pre-trained teacher checkpoint")
        if not hasattr(teacher, "classify"):
            raise ConfigError(f"{self.method_key}.requires.teacher: the teacher must be a MultiModalNet "
                              "(its head, `classify`, is the task-specific distillation head)")
        self.n_protos = p["n_bins"] if self.task == "regression" else self.n_classes
        self.adapter = None
        self.register_buffer("prototypes", torch.zeros(0))
        self.register_buffer("present", torch.zeros(0, dtype=torch.bool))

    def bin_rule(self) -> tuple[float, str]:
        """``(threshold, tie)`` of the regression bins: the params, else the dimension's
        (``dimension_spec``, set by the training loop: its ``threshold`` and ``tie``), else (5, low)."""
        dim = getattr(self, "dimension_spec", None) or {}
        thr = self.params["bin_threshold"]
        thr = float(dim.get("threshold", 5.0)) if thr is None else float(thr)
        tie = self.params["bin_tie"] or dim.get("tie", "low")
        return thr, tie

    def proto_labels(self, y: torch.Tensor) -> torch.Tensor:
        if self.task != "regression":
            return y.long()
        thr, tie = self.bin_rule()
        return bin_targets(y, self.n_protos, thr, tie)

    def sample_weights(self, cos_t: torch.Tensor) -> torch.Tensor:
        """(U3) the detached per-sample weights of the teacher's cosines to the prototypes (all 1
        with ``uncertainty: false``)."""
        p = self.params
        if not p["uncertainty"]:
            return torch.ones(cos_t.shape[0], dtype=cos_t.dtype, device=cos_t.device)
        return confidence_weights(cos_t / p["tau"]).detach()

    def active_terms(self) -> tuple[str, ...]:
        """The loss terms of (U4)-(U6) this run computes: switch on and lambda > 0 (U7)."""
        p = self.params
        return tuple(t for t in TERMS if p[t] and p[f"lambda_{t}"] > 0)

    @torch.no_grad()
    def set_prototypes(self, features: torch.Tensor, y: torch.Tensor) -> None:
        protos, present = class_prototypes(features, self.proto_labels(y), self.n_protos)
        if int(present.sum()) < 2:
            raise ConfigError(f"{self.method_key}: the training part has fewer than two classes/bins with samples "
                              f"({int(present.sum())}); prototype alignment needs at least two")
        self.prototypes = protos[present].to(self.present.device)
        self.present = present.to(self.present.device)

    def configure(self, parts=None, device=None, optimizer=None, batch_size: int = 256, **_):
        """Prototypes (U1) from the frozen teacher over the whole training part; the adapter ``g``."""
        dev = device if device is not None else "cpu"
        train = parts["train"]
        teacher = self.teachers["teacher"]
        feats = []
        with torch.no_grad():
            for s in range(0, len(train), batch_size):
                b = train.batch(torch.arange(s, min(s + batch_size, len(train))), dev)
                feats.append(teacher(b).features["fused"].float())
            ds = self.student.eval()(train.batch(torch.arange(min(2, len(train))), dev)).features["fused"].shape[1]
        self.student.train(self.training)
        z_t = torch.cat(feats)
        self.to(dev)
        self.set_prototypes(z_t, train.y.to(dev))
        self.adapter = nn.Linear(ds, z_t.shape[1]).to(dev)
        if optimizer is not None:
            optimizer.add_param_group({"params": list(self.adapter.parameters())})

    def training_step(self, batch):
        if self.adapter is None:
            raise RuntimeError("uaproto: call configure(parts=..., device=..., optimizer=...) before training")
        p = self.params
        out = self.student(batch)
        teacher = self.teachers["teacher"]
        with torch.no_grad():
            t_out = teacher(batch)
        z_t = t_out.features["fused"].detach()
        g = self.adapter(out.features["fused"])
        terms = {"task": self.task_loss(out.logits, batch["y"])}

        cos_t = cosine_to_prototypes(z_t, self.prototypes)
        w = self.sample_weights(cos_t)
        self.diagnostics = {"ua_w_mean": float(w.mean()),
                            "ua_w_std": float(w.std(unbiased=False)) if w.numel() > 1 else 0.0}
        active = self.active_terms()
        if "proto" in active:
            cos_s = cosine_to_prototypes(g, self.prototypes)
            kl = prototype_alignment(cos_s / p["tau"], cos_t / p["tau"])
            terms["proto"] = p["lambda_proto"] * weighted_mean(kl, w)
        if "feat" in active:
            terms["feat"] = p["lambda_feat"] * weighted_mean(1.0 - F.cosine_similarity(g, z_t, dim=1), w)
        if "head" in active:
            y_ts, _ = teacher.classify(g)  # the frozen teacher head (eval mode: no dropout)
            if self.task == "regression":
                terms["head"] = p["lambda_head"] * F.mse_loss(y_ts, t_out.logits.detach())
            else:
                terms["head"] = p["lambda_head"] * losses.kd(y_ts, t_out.logits.detach(), p["temperature"])
        return out.logits, terms


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "uaproto": {"roles": ["teacher"], "description": "uncertainty-aware cross-modal prototype KD",
                "extends": ["temperature"],
                "search": {"lambda_proto": "weight", "lambda_feat": "weight", "lambda_head": "weight",
                           "temperature": "temperature"},
                "params": {"lambda_proto": {"default": 1.0, "lo": 0.0}, "lambda_feat": {"default": 1.0, "lo": 0.0}, "lambda_head": {"default": 1.0, "lo": 0.0},
                           "tau": {"default": 0.1, "lo": 0.0, "lo_open": True},
                           "n_bins": {"default": 2, "kind": "int", "lo": 2},
                           "uncertainty": {"default": True, "kind": "bool", "doc": "(U3) uncertainty weights; false: every weight 1 (ablation)"},
                           "proto": {"default": True, "kind": "bool", "doc": "(U4) prototype alignment term; false drops it (ablation)"},
                           "feat": {"default": True, "kind": "bool", "doc": "(U5) feature alignment term; false drops it (ablation)"},
                           "head": {"default": True, "kind": "bool", "doc": "(U6) distillation-head term; false drops it (ablation)"},
                           "bin_threshold": {"default": None, "lo": 1.0, "nullable": True},
                           "bin_tie": {"default": None, "kind": "choice", "choices": ["low", "high"], "nullable": True}}},
}

METHODS = {"uaproto": UAProto}
