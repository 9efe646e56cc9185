"""CMCRD: cross-modal contrastive representation distillation (arXiv 2504.09221, EEG + eye
movements). A network of one modality (eye movements) teaches a network of another (EEG), or the
reverse; only the student's modality is needed at test time.

Two stages, two methods:

``cmcrd_teacher`` -- the teacher is trained with cross-entropy plus the *minimum class confusion*
loss of Jin, Wang, Long & Wang 2020 ("Minimum Class Confusion for Versatile Domain Adaptation",
ECCV, §3; equation numbers of that paper), applied to the teacher's own training batches:

- eq. (1)  ``p_ij = softmax_j(z_ij / T)``  (temperature ``T``; 2.5 in Jin et al.);
- eq. (2)  ``H_i = -sum_j p_ij log p_ij``;
- eq. (3)  ``W_ii = B (1 + exp(-H_i)) / sum_k (1 + exp(-H_k))``  (detached, as the authors' code);
- eq. (4)  ``C_jj' = sum_i W_ii p_ij p_ij'``  (the class confusion matrix, ``P^T W P``);
- eq. (5)  ``C~_jj' = C_jj' / sum_j'' C_jj''``  (row normalisation);
- eq. (6)  ``L_MCC = 1/K sum_j sum_{j' != j} |C~_jj'|``.

  ``L_teacher = CE + mu * L_MCC``  (``mu`` = ``params.mu``, 1 by default).

``cmcrd`` -- the student is trained with the CRD objective across modalities plus unimodal
supervision weighted by information entropy:

  ``L_student = gamma * (1/B) sum_i w_i CE(y_i, s_i) + beta * L_CRD``

- ``L_CRD``: contrastive representation distillation (Tian et al. 2020, eq. (18)-(19)) between the
  student's ``embedding`` (EEG) and the frozen teacher's ``embedding`` (eye), each through a trained
  ``Linear(D, feat_dim)`` + L2-norm head, with a memory bank over the training part
  (:class:`cmkd.losses.CRDMemory`, :func:`cmkd.losses.crd`); defaults as RepDistiller's CRD
  (``beta`` 0.8, ``nce_t`` 0.07, ``nce_m`` 0.5, ``feat_dim`` 128; ``nce_k`` 4096, capped at
  ``n_data - 1``). Negatives are class-aware by default (``negatives: auto``, inherited from
  :class:`cmkd.methods.crd.CRD`: drawn from the other classes' samples, as the CMCRD code does);
  ``negatives: uniform`` draws from every other sample.
- ``w_i``, the information-entropy weights (documented choice: the CMCRD text names the
  weighting but the formula we use is MCC's eq. (3) form, applied to the *teacher's* prediction on
  the paired sample of the other modality, at temperature 1)::

      H_i = -sum_k p^t_ik log p^t_ik,   a_i = 1 + exp(-H_i),   w_i = B a_i / sum_j a_j.

  So ``sum_i w_i = B`` (the weighted CE is a re-weighted batch mean, on the scale of the plain
  CE), and since ``H_i`` lies in ``[0, log K]``, ``a_i`` lies in ``[1 + 1/K, 2]`` and every weight
  in ``[(K + 1) / (2K), 2K / (K + 1)]`` (for two classes ``[0.75, 1.333]``): samples on which the
  other modality is confident (a clear emotion) weigh up to ``2K / (K + 1)`` times a uniform
  weight; ambiguous ones (likely label noise) down to ``(K + 1) / (2K)``. The weights are
  constants (no gradient). ``weighting: student`` takes ``p`` from the student's own detached
  prediction instead; ``weighting: none`` gives the plain CE (``w_i = 1``, an ablation).

Both stages are classification only (the paper's task; the confusion matrix and the entropy
need class probabilities): a regression dimension is a ConfigError.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cmkd.errors import ConfigError
from cmkd.methods.base import Method
from cmkd.methods.crd import CRD


# ----------------------------------------------------------------------------- pure losses
def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of each row of ``probs`` (B, K), with ``0 log 0 = 0``; shape (B,)."""
    if probs.dim() != 2:
        raise ValueError(f"entropy: probs must be (B, K), got {tuple(probs.shape)}")
    return -torch.special.xlogy(probs, probs).sum(dim=1)


def entropy_weights(probs: torch.Tensor) -> torch.Tensor:
    """``w_i = B (1 + exp(-H_i)) / sum_j (1 + exp(-H_j))`` (Jin et al. 2020 eq. (3); CMCRD's
    entropy weights of the unimodal supervision). Sums to ``B``; each weight in
    ``[(K + 1) / (2K), 2K / (K + 1)]``. Returned detached, shape (B,)."""
    probs = probs.detach()
    a = 1.0 + torch.exp(-entropy(probs))
    return probs.shape[0] * a / a.sum()


def mcc_loss(logits: torch.Tensor, temperature: float = 2.5) -> torch.Tensor:
    """Minimum class confusion loss, Jin et al. 2020 eq. (1)-(6) (see the module docstring).

    ``logits`` (B, K); returns a 0-d tensor. The sample weights of eq. (3) are detached (as in the
    authors' implementation); the gradient flows through both probability factors of eq. (4).
    """
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"mcc_loss: logits must be (B, K) with K >= 2, got {tuple(logits.shape)}")
    if not float(temperature) > 0:
        raise ValueError(f"mcc_loss: temperature must be > 0, got {temperature}")
    k = logits.shape[1]
    p = F.softmax(logits / float(temperature), dim=1)
    w = entropy_weights(p)
    confusion = (p * w.unsqueeze(1)).t() @ p  # (K, K) = P^T W P
    confusion = confusion / confusion.sum(dim=1, keepdim=True)
    return (confusion.sum() - torch.diagonal(confusion).sum()) / k


def weighted_ce(logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``1/B sum_i w_i CE(y_i, logits_i)`` (the weights are used as given)."""
    ce = F.cross_entropy(logits, y, reduction="none")
    return (weights.to(ce.dtype) * ce).mean()


# ----------------------------------------------------------------------------- helpers
def _classification_only(method: Method) -> None:
    if method.task != "classification" or method.n_classes < 2:
        raise ConfigError(f"{method.method_key}: classification only (the class confusion matrix and the entropy "
                          f"weights need class probabilities), got task {method.task!r}")


# ----------------------------------------------------------------------------- methods
class CMCRDTeacher(Method):
    """``L = CE + mu * L_MCC(logits / T)`` (CMCRD teacher; Jin et al. 2020 eq. (1)-(6))."""

    def _check_params(self) -> None:
        super()._check_params()
        _classification_only(self)

    def training_step(self, batch):
        out = self.student(batch)
        terms = {"ce": F.cross_entropy(out.logits, batch["y"])}
        if self.params["mu"] > 0:
            terms["mcc"] = self.params["mu"] * mcc_loss(out.logits, self.params["temperature"])
        return out.logits, terms


class CMCRD(CRD):
    """``L = gamma * entropy-weighted CE + beta * L_CRD(student, teacher)`` (CMCRD student).

    CRD (:class:`cmkd.methods.crd.CRD`: heads, memory bank, NCE objective, ``alpha`` KD term off
    by default) with the cross-entropy replaced by the entropy-weighted cross-entropy
    (:func:`weighted_ce`, weights from :meth:`unimodal_weights`).
    """

    name = "cmcrd"
    WEIGHTINGS = ("teacher", "student", "none")

    def _check_params(self) -> None:
        super()._check_params()
        _classification_only(self)

    def unimodal_weights(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        mode = self.params["weighting"]
        if mode == "none":
            return torch.ones(student_logits.shape[0], device=student_logits.device)
        src = teacher_logits if mode == "teacher" else student_logits
        return entropy_weights(F.softmax(src.detach(), dim=1))

    def base_terms(self, s_out, t_out, y) -> dict:
        terms = super().base_terms(s_out, t_out, y)
        w = self.unimodal_weights(s_out.logits, t_out.logits)
        terms["ce"] = self.params["gamma"] * weighted_ce(s_out.logits, y, w)
        return terms

    def feature_terms(self, batch, s_out, t_out) -> dict:
        return super().feature_terms(batch, s_out, t_out) if self.params["beta"] > 0 else {}


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "cmcrd_teacher": {"description": "CMCRD teacher with minimal class confusion",
                      "params": {"mu": {"default": 1.0, "lo": 0.0},
                                 "temperature": {"default": 2.5, "lo": 0.0, "lo_open": True}}},
    "cmcrd": {"roles": ["teacher"], "description": "CMCRD cross-modal contrastive representation distillation",
              "extends": ["crd"],
              "search": {"beta": {"lo": 0.08, "hi": 8.0, "log": True}},  # as CRD's
              "params": {"weighting": {"default": "teacher", "kind": "choice", "choices": ["teacher", "student", "none"]}}},
}

METHODS = {"cmcrd_teacher": CMCRDTeacher, "cmcrd": CMCRD}
