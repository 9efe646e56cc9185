"""Uncertainty-aware cross-modal KD with prototype learning (arXiv 2507.13092, visual -> EEG).

A frozen visual (face) teacher guides an EEG student. What the paper fixes (its overview
figure): the intermediate features of teacher and student pass a *prototype-based similarity
module*, which gives an *evidence-based uncertainty* estimate and a class-level semantic
alignment; and the student's intermediate feature is injected into the pre-trained teacher's
*task-specific distillation head*, whose prediction ``y_{t|s}`` is compared with the teacher's own
prediction ``y_t``. The equations are not in the material we could read, so every formula below
is a documented choice built from these pieces (equation tags ``(U1)``... are this module's).

Notation: ``z_t`` the teacher's intermediate feature (its encoder output, ``features["fused"]``,
the input of its head), ``z_s`` the student's (``features["fused"]``), ``g`` a trained
``Linear(D_s, D_t)`` adapter into the teacher's feature space, ``hat(x) = x / ||x||``, ``K`` the
number of prototypes.

- (U1) prototypes: ``c_k = hat(mean_{i: class(i) = k} hat(z_t,i))`` over the *whole training
  part*, computed once in :meth:`UAProto.configure` (the teacher is frozen, so they are exact and
  deterministic, no running average). For classification the classes are the labels; for
  regression the targets in [0, 1] are cut into ``n_bins`` equal-width bins (default 2, i.e. the
  rating threshold 5). A class with no training sample has no prototype and is left out.
- (U2) similarities: ``q_ik = cos(z_t,i, c_k) / tau`` (teacher), ``s_ik = cos(g(z_s,i), c_k) / tau``
  (student), ``tau`` = ``params.tau`` (0.1).
- (U3) evidence-based uncertainty of the teacher (subjective logic, Sensoy et al. 2018):
  evidence ``e_ik = exp(cos(z_t,i, c_k) / tau_u)``, Dirichlet ``alpha_ik = e_ik + 1``,
  ``S_i = sum_k alpha_ik``, belief ``b_ik = e_ik / S_i``, uncertainty ``u_i = K / S_i``; so
  ``sum_k b_ik + u_i = 1`` and ``u_i`` lies in ``(0, 1]``; with cosine evidence, more tightly
  ``u_i in [1 / (1 + e^{1/tau_u}), 1 / (1 + e^{-1/tau_u})]``. ``tau_u`` = ``params.tau_u`` (0.5).
  Per-sample weight ``w_i = 1 - u_i`` (the total belief), in ``[0, 1)``, detached.
- (U4) uncertainty-aware prototype alignment:
  ``L_proto = 1/B sum_i w_i KL(softmax(q_i) || softmax(s_i))``.
- (U5) uncertainty-aware feature alignment: ``L_feat = 1/B sum_i w_i (1 - cos(g(z_s,i), z_t,i))``.
- (U6) task-specific distillation head: ``y_{t|s} = head_t(g(z_s))`` with the teacher's frozen
  head (in eval mode; gradient flows through it into ``g`` and the student);
  classification: ``L_head = T^2 KL(softmax(y_t / T) || softmax(y_{t|s} / T))``
  (:func:`cmkd.losses.kd`, ``T`` = ``params.temperature``, 4); regression:
  ``L_head = MSE(y_{t|s}, y_t)``.
- (U7) ``L = L_task + lambda_proto L_proto + lambda_feat L_feat + lambda_head L_head``, with
  ``L_task`` the student's own cross-entropy (classification) or MSE on [0, 1] targets
  (regression); all lambdas 1 by default (set one to 0 for an ablation). ``uncertainty: false``
  sets every ``w_i = 1`` (the ablation without uncertainty-aware weighting).

The teacher must be a :class:`cmkd.models.fusion.MultiModalNet` (it needs ``classify``, its head).
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from cmkd import losses
from cmkd.errors import ConfigError
from cmkd.methods.base import Method


# ----------------------------------------------------------------------------- pure functions
def bin_targets(y: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Regression targets in [0, 1] -> bin indices ``min(floor(y * n_bins), n_bins - 1)`` (long)."""
    return torch.clamp(torch.floor(y.float() * n_bins), 0, n_bins - 1).long()


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


def evidential_uncertainty(cosines: torch.Tensor, tau_u: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """(U3): ``e = exp(cos / tau_u)``, ``alpha = e + 1``, ``S = sum alpha``; returns
    ``(u = K / S (B,), belief = e / S (B, K))``."""
    if cosines.dim() != 2:
        raise ValueError(f"evidential_uncertainty: cosines must be (B, K), got {tuple(cosines.shape)}")
    if not float(tau_u) > 0:
        raise ValueError(f"evidential_uncertainty: tau_u must be > 0, got {tau_u}")
    e = torch.exp(cosines / float(tau_u))
    s = (e + 1.0).sum(dim=1)
    return cosines.shape[1] / s, e / s.unsqueeze(1)


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
    """Uncertainty-aware prototype KD, (U1)-(U7) of the module docstring."""

    roles = ("teacher",)

    def _check_params(self) -> None:
        super()._check_params()
        p = self.params
        teacher = self.teachers.get("teacher")
        if teacher is None:
            raise ConfigError("methods.<uaproto>.requires.teacher: needs a pre-trained teacher checkpoint")
        if not hasattr(teacher, "classify"):
            raise ConfigError("methods.<uaproto>.requires.teacher: the teacher must be a MultiModalNet "
                              "(its head, `classify`, is the task-specific distillation head)")
        self.n_protos = p["n_bins"] if self.task == "regression" else self.n_classes
        self.adapter = None
        self.register_buffer("prototypes", torch.zeros(0))
        self.register_buffer("present", torch.zeros(0, dtype=torch.bool))

    def proto_labels(self, y: torch.Tensor) -> torch.Tensor:
        return bin_targets(y, self.n_protos) if self.task == "regression" else y.long()

    @torch.no_grad()
    def set_prototypes(self, features: torch.Tensor, y: torch.Tensor) -> None:
        protos, present = class_prototypes(features, self.proto_labels(y), self.n_protos)
        if int(present.sum()) < 2:
            raise ConfigError(f"methods.<uaproto>: the training part has fewer than two classes/bins with samples "
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
        u, _ = evidential_uncertainty(cos_t, p["tau_u"])
        w = (1.0 - u).detach() if p["uncertainty"] else torch.ones_like(u)
        if p["lambda_proto"] > 0:
            cos_s = cosine_to_prototypes(g, self.prototypes)
            kl = prototype_alignment(cos_s / p["tau"], cos_t / p["tau"])
            terms["proto"] = p["lambda_proto"] * weighted_mean(kl, w)
        if p["lambda_feat"] > 0:
            terms["feat"] = p["lambda_feat"] * weighted_mean(1.0 - F.cosine_similarity(g, z_t, dim=1), w)
        if p["lambda_head"] > 0:
            y_ts, _ = teacher.classify(g)  # the frozen teacher head (eval mode: no dropout)
            if self.task == "regression":
                terms["head"] = p["lambda_head"] * F.mse_loss(y_ts, t_out.logits.detach())
            else:
                terms["head"] = p["lambda_head"] * losses.kd(y_ts, t_out.logits.detach(), p["temperature"])
        return out.logits, terms


METHODS = {"uaproto": UAProto}
