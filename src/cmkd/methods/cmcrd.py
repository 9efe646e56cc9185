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

Where the entropy weights sit (``weighting_target``). Seed 003 (the CMCRD summary we have) says
"unimodal supervision with information entropy weighting" and no more, so two readings run:

- ``ce`` (default, the reading of the seed's words): the weights ``w_i`` above multiply the
  student's cross-entropy; ``L_CRD`` is plain CRD.
- ``nce`` (a third-party summary's reading and what is probably the authors' public code,
  github.com/kssyyy/UnCRD ``unis_crdloss.py``, where the weights are computed from the teacher's
  logits at temperature 1 and normalised to the batch size): the cross-entropy is plain and each
  anchor's normalised NCE scores (its positive and its ``K`` negatives, in both directions) are
  multiplied by ``w_i`` (:func:`cmkd.losses.crd`, ``score_weights``; ``Z`` is set from the
  unweighted scores, as there). That code also uses ``nce_k`` 140 (``n_data`` 1470).

``teacher_mask`` (either reading): a per-anchor factor on both NCE log terms from whether the
teacher's argmax equals the label (:func:`teacher_mask`; :func:`cmkd.losses.crd_nce_loss`):
``none`` (1 everywhere), ``signed`` (+1 where the teacher is right, -1 where it is wrong: the
public code's ``mask`` after ``torch.where(mask == 0, -1, mask)``) or ``correct`` (1 / 0: anchors
of a wrong teacher contribute nothing, a milder reading). The public code also detaches the
features of a side that is right where the other is wrong (``UniSMMConLoss``); that gradient
routing is not reproduced here.

Both stages are classification only (the paper's task; the confusion matrix and the entropy
need class probabilities): a regression dimension is a ConfigError.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cmkd import losses
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


def teacher_mask(teacher_logits: torch.Tensor, y: torch.Tensor, mode: str) -> torch.Tensor | None:
    """CMCRD's teacher-correctness mask on the NCE terms (the reading of the public code,
    github.com/kssyyy/UnCRD ``unis_crdloss.py``): ``c_i = [argmax_k teacher_logits_ik == y_i]``;
    ``signed`` gives ``2 c_i - 1`` (+1 / -1, the code's), ``correct`` gives ``c_i`` (1 / 0), ``none``
    gives None (no mask). Shape (B,), float, no gradient."""
    if mode == "none":
        return None
    right = (teacher_logits.detach().argmax(dim=1) == y).to(teacher_logits.dtype)
    if mode == "signed":
        return 2.0 * right - 1.0
    if mode == "correct":
        return right
    raise ValueError(f"teacher_mask: mode must be none, signed or correct, got {mode!r}")


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
        if self.params["weighting_target"] == "ce":
            w = self.unimodal_weights(s_out.logits, t_out.logits)
            terms["ce"] = self.params["gamma"] * weighted_ce(s_out.logits, y, w)
        return terms  # "nce": the plain CE of CRD's objective; the weights go into the NCE scores

    def feature_terms(self, batch, s_out, t_out) -> dict:
        p = self.params
        if p["beta"] <= 0:
            return {}
        if p["weighting_target"] == "ce" and p["teacher_mask"] == "none":
            return super().feature_terms(batch, s_out, t_out)
        if self.memory is None:
            raise RuntimeError("cmcrd: call configure(parts=..., device=..., optimizer=...) before training")
        s, t = self._pair(s_out, t_out)
        w = self.unimodal_weights(s_out.logits, t_out.logits) if p["weighting_target"] == "nce" else None
        mask = teacher_mask(t_out.logits, batch["y"], p["teacher_mask"])
        loss = losses.crd(self.embed_s(s), self.embed_t(t), batch["index"], self.memory,
                          temperature=p["nce_t"], score_weights=w, mask=mask)
        return {"crd": p["beta"] * loss}


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "cmcrd_teacher": {"description": "CMCRD teacher with minimal class confusion",
                      "params": {"mu": {"default": 1.0, "lo": 0.0},
                                 "temperature": {"default": 2.5, "lo": 0.0, "lo_open": True}}},
    "cmcrd": {"roles": ["teacher"], "description": "CMCRD cross-modal contrastive representation distillation",
              "extends": ["crd"],
              "search": {"beta": {"lo": 0.08, "hi": 8.0, "log": True}},  # as CRD's
              "params": {"weighting": {"default": "teacher", "kind": "choice", "choices": ["teacher", "student", "none"]},
                         "weighting_target": {"default": "ce", "kind": "choice", "choices": ["ce", "nce"],
                                              "doc": "where the entropy weights sit: the student's CE (the seed's "
                                                     "words) or the NCE scores (the public code's reading)"},
                         "teacher_mask": {"default": "none", "kind": "choice", "choices": ["none", "signed", "correct"],
                                          "doc": "per-anchor factor on the NCE terms from whether the teacher is "
                                                 "right: none, +1/-1 (the public code's) or 1/0"}}},
}

METHODS = {"cmcrd_teacher": CMCRDTeacher, "cmcrd": CMCRD}
