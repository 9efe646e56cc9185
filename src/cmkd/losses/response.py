"""Response-based distillation: the student matches the teacher's softened outputs
(Hinton, Vinyals & Dean 2015, eq. (1) with the T^2 scaling of §2)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cmkd.losses.base import _check_logits, _check_temperature


def kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """Knowledge distillation loss (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a
    Neural Network", eq. (1) softened softmax, with the T^2 gradient scaling of §2).

    ``T^2 * KL(softmax(t / T) || softmax(s / T))``, summed over classes and averaged over the
    batch: exactly RepDistiller's ``DistillKL``
    (``F.kl_div(log_softmax(s/T), softmax(t/T), reduction='sum') * T**2 / B``).

    Only the soft-target term; the hard-label cross-entropy is added by the method.

    Args:
        student_logits: (B, n_classes).
        teacher_logits: (B, n_classes), detached by the caller.
        temperature: T > 0.
    """
    _check_logits("kd", student_logits, teacher_logits)
    _check_temperature("kd", temperature)
    t = float(temperature)
    log_p_s = F.log_softmax(student_logits / t, dim=1)
    p_t = F.softmax(teacher_logits / t, dim=1)
    return F.kl_div(log_p_s, p_t, reduction="sum") * (t * t) / student_logits.shape[0]
