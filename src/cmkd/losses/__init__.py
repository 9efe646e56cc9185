"""Distillation and training losses: pure functions of tensors, one per equation, one module per
family (response-based, feature hints, relational, contrastive, densely guided, CDGKD prototypes).

Every function cites the paper and equation it implements and says where it deviates. Where a
loss has a widely used reference implementation (RepDistiller's ``distiller_zoo`` and ``crd``),
we match its arithmetic, so that our numbers are comparable with the literature that used it.

Equation numbers are given where we checked them against the paper's text (CDGKD; Hinton eq. 1;
FitNets eq. 3; CRD eq. 18-19, the numbering RepDistiller's ``ContrastLoss`` refers to). For NST,
SP, RKD, PKT and DGKD the docstring names the paper's own symbol for the loss (``L_MMD^2``,
``L_SP``, ``L_RKD-D`` / ``L_RKD-A``, ...) rather than a number we could not check.

Conventions
-----------
- Shapes: logits are ``(B, n_classes)``; embeddings are ``(B, D)`` (anything after the batch axis
  is flattened where the loss says so); feature maps are ``(B, C, ...)``.
- Teacher-side tensors are used as given. A method passes its frozen teachers' outputs detached
  (computed under ``torch.no_grad()``), so that gradient reaches the student only. Where the
  reference implementation itself detaches a teacher-only term (NST, RKD), so do we.
- Bad shapes and arguments raise ``ValueError`` (a programming error, not a user error).
- Reductions are batch means unless an equation says otherwise; every loss returns a 0-d tensor.

Modules
-------
- :mod:`cmkd.losses.response`: :func:`kd`
- :mod:`cmkd.losses.hints`: :func:`fitnets`, :func:`nst`, :func:`nst_over_batch`
- :mod:`cmkd.losses.relational`: :func:`sp`, :func:`rkd`, :func:`pkt`
- :mod:`cmkd.losses.contrastive`: :class:`CRDMemory`, :func:`crd_nce_loss`, :func:`crd`
- :mod:`cmkd.losses.guided`: :func:`dgkd`, :func:`kl_current_guide`, :func:`cdgkd`
- :mod:`cmkd.losses.prototypes`: the CDGKD teacher's eqs. (1)-(6)
- :mod:`cmkd.losses.base`: the shared argument checks

Index (paper, equation -> function)
-----------------------------------
- Hinton et al. 2015, KD, eq. (1) + the T^2 scaling of §2        -> :func:`kd`
- Romero et al. 2015, FitNets, hint loss eq. (3)                   -> :func:`fitnets`
- Huang & Wang 2017, NST, L_MMD^2 with a polynomial kernel        -> :func:`nst`; over the batch
  where a side has no spatial axis (a reconstruction)          -> :func:`nst_over_batch`
- Tung & Mori 2019, SP, L_SP                                      -> :func:`sp`
- Park et al. 2019, RKD, L_RKD-D + L_RKD-A                        -> :func:`rkd`
- Passalis & Tefas 2018, PKT, cosine-kernel KL                    -> :func:`pkt`
- Tian et al. 2020, CRD, NCE objective eq. (18)-(19) (arXiv v2+)  -> :class:`CRDMemory`,
  :func:`crd_nce_loss`, :func:`crd`
- Son et al. 2021, DGKD, dense guidance with stochastic drop      -> :func:`dgkd`
- CDGKD (the cross-modal densely guided KD paper, §3.1-3.2):
  eq. (1) -> :func:`class_prototypes`; eq. (2) -> :func:`prototype_probs`;
  eq. (3) -> :func:`prototype_loss`; eq. (4) -> :func:`convergence_rate`;
  eq. (5) -> :func:`teacher_loss`; eq. (6) -> :func:`rebalance_weights`;
  eq. (9) -> :func:`cdgkd`, its KL in the equation's direction :func:`kl_current_guide`
  (eqs. (7)-(8), who guides whom, live in the method, not here).
"""

from cmkd.losses.base import NCE_EPS
from cmkd.losses.contrastive import CRDMemory, crd, crd_nce_loss
from cmkd.losses.guided import KL_DIRECTIONS, cdgkd, dgkd, kl_current_guide
from cmkd.losses.hints import fitnets, nst, nst_over_batch
from cmkd.losses.prototypes import (class_prototypes, convergence_rate, prototype_loss, prototype_probs,
                                    rebalance_weights, teacher_loss)
from cmkd.losses.relational import pkt, rkd, sp
from cmkd.losses.response import kd

__all__ = [
    "kd",
    "fitnets",
    "nst",
    "nst_over_batch",
    "sp",
    "rkd",
    "pkt",
    "CRDMemory",
    "crd_nce_loss",
    "crd",
    "dgkd",
    "kl_current_guide",
    "KL_DIRECTIONS",
    "NCE_EPS",
    "class_prototypes",
    "prototype_probs",
    "prototype_loss",
    "convergence_rate",
    "rebalance_weights",
    "teacher_loss",
    "cdgkd",
]
