"""Densely guided distillation: DGKD's dense guidance with stochastic drop (Son et al. 2021)
and the loss of a TA or the student of CDGKD, eq. (9), with its KL in either direction."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from cmkd.losses.base import _check_labels, _check_logits, _check_temperature, _check_unit, _zero_like_graph
from cmkd.losses.response import kd


#: the two directions of the distillation KL (CDGKD eq. (9) writes ``current_guide``)
KL_DIRECTIONS = ("current_guide", "guide_current")


def kl_current_guide(student_logits: torch.Tensor, guide_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The KL of CDGKD eq. (9) in the direction the equation writes, ``KL(l_{A_i} || l_{A_{i-j}})``:
    the current network (TA or student) first, the guide second, on softmax outputs:

    ``T^2 * 1/B sum_b sum_c p_s[b, c] (log p_s[b, c] - log p_g[b, c])``,
    ``p_s = softmax(student / T)``, ``p_g = softmax(guide / T)``.

    The reverse of :func:`kd` (which is ``KL(p_g || p_s)``, Hinton's and DGKD's direction). The
    ``T^2`` factor is kept for symmetry with :func:`kd` (``T = 1``, CDGKD's setting, makes it the
    plain KL). Gradient flows through both factors of the student side; the guide is used as given.
    """
    _check_logits("kl_current_guide", student_logits, guide_logits)
    _check_temperature("kl_current_guide", temperature)
    t = float(temperature)
    log_p_s = F.log_softmax(student_logits / t, dim=1)
    log_p_g = F.log_softmax(guide_logits / t, dim=1)
    return (log_p_s.exp() * (log_p_s - log_p_g)).sum() * (t * t) / student_logits.shape[0]


def _kl(student_logits, guide_logits, temperature, direction: str) -> torch.Tensor:
    if direction == "current_guide":
        return kl_current_guide(student_logits, guide_logits, temperature)
    if direction == "guide_current":
        return kd(student_logits, guide_logits, temperature)
    raise ValueError(f"kl direction must be one of {KL_DIRECTIONS}, got {direction!r}")


def dgkd(
    student_logits: torch.Tensor,
    guide_logits: Sequence[torch.Tensor],
    temperature: float,
    keep: Sequence[bool],
    direction: str = "guide_current",
) -> torch.Tensor:
    """Densely guided KD (Son et al. 2021, "Densely Guided Knowledge Distillation using Multiple
    Teacher Assistants", ICCV: the sum of KD losses from the teacher and every TA, with the
    stochastic learning that drops guides at random) and the distillation term of CDGKD eq. (9)
    (``1/|S_i| sum_j KL``).

    The mean of :func:`kd` ``(student_logits, g, temperature)`` over the guides ``g`` whose
    ``keep`` flag is true (a mean over the kept guides, as CDGKD eq. (9) writes; DGKD's sum
    differs by the factor ``|S_i|``). The drop itself is the caller's: it draws ``keep`` from the
    run's seed, so this function stays deterministic. ``direction``: ``guide_current`` (default,
    :func:`kd`, ``KL(guide || student)`` as DGKD) or ``current_guide``
    (:func:`kl_current_guide`, ``KL(student || guide)`` as CDGKD eq. (9) writes).

    If no guide is kept, the result is a zero that keeps the student's graph
    (``(student_logits * 0).sum()``): backward works and gives zero gradient.
    ``len(keep) != len(guide_logits)`` raises ``ValueError``.
    """
    guides = list(guide_logits)
    flags = [bool(k) for k in keep]
    if len(flags) != len(guides):
        raise ValueError(f"dgkd: {len(flags)} keep flags for {len(guides)} guides")
    _check_temperature("dgkd", temperature)
    if direction not in KL_DIRECTIONS:
        raise ValueError(f"dgkd: direction must be one of {KL_DIRECTIONS}, got {direction!r}")
    kept = [g for g, k in zip(guides, flags) if k]
    if not kept:
        return _zero_like_graph(student_logits)
    return torch.stack([_kl(student_logits, g, temperature, direction) for g in kept]).mean()


# ----------------------------------------------------------------------------- CDGKD §3.2
def cdgkd(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    guide_logits: Sequence[torch.Tensor],
    keep: Sequence[bool],
    beta: float = 0.5,
    temperature: float = 1.0,
    kl_direction: str = "current_guide",
) -> torch.Tensor:
    """CDGKD loss of a TA or the student, CDGKD eq. (9):
    ``(1 - beta) * L_CE + beta * 1/|S_i| sum_{j in S_i} KL_j``.

    - ``L_CE``: ``F.cross_entropy(student_logits, labels)`` (batch mean).
    - ``S_i``: the guides (teacher and earlier TAs, eqs. (7)-(8)) whose ``keep`` flag is true;
      the caller draws the flags (the stochastic drop) from the run's seed.
    - ``KL_j``: the paper writes ``KL(l_{A_i} || l_{A_{i-j}})``, the current network first.
      ``kl_direction = "current_guide"`` (default) implements that direction on the softmax
      outputs (:func:`kl_current_guide`); ``"guide_current"`` is the standard distillation
      direction of Hinton and DGKD, ``KL(softmax(guide / T) || softmax(student / T))``
      (:func:`kd`). Both are scaled by ``T^2`` (1 at the default ``T = 1``). The term is
      :func:`dgkd`.
    - No kept guide: the distillation term is a graph-keeping zero, so the loss is
      ``(1 - beta) * L_CE`` (the weight is not renormalised). A method that wants at least one
      guide per step must draw ``keep`` accordingly.
    """
    _check_unit("cdgkd", "beta", beta)
    if student_logits.dim() != 2:
        raise ValueError(f"cdgkd: logits must be (B, n_classes), got {tuple(student_logits.shape)}")
    labels = _check_labels("cdgkd", labels, student_logits.shape[0], student_logits.shape[1])
    b = float(beta)
    ce = F.cross_entropy(student_logits, labels)
    return (1.0 - b) * ce + b * dgkd(student_logits, guide_logits, temperature, keep, kl_direction)
