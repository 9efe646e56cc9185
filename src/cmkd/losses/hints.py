"""Feature hints: the student matches an intermediate representation of the teacher
(FitNets, Romero et al. 2015, eq. (3); NST, Huang & Wang 2017, L_MMD^2, and its reconstruction
over the mini-batch for vector features)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cmkd.losses.base import _check_same_batch


def fitnets(student_hint: torch.Tensor, teacher_hint: torch.Tensor) -> torch.Tensor:
    """FitNets hint loss (Romero et al. 2015, "FitNets: Hints for Thin Deep Nets", eq. (3)).

    The paper's ``1/2 ||u_h - r(v_g)||^2`` is implemented as the mean squared error over all
    elements (deviation in scale only; RepDistiller's ``HintLoss`` is ``nn.MSELoss()``).
    ``student_hint`` is the student's guided layer already passed through the regressor ``r``,
    which belongs to the method; shapes must match exactly (no broadcasting).
    """
    if student_hint.shape != teacher_hint.shape:
        raise ValueError(
            "fitnets: regressed student hint and teacher hint differ in shape: "
            f"{tuple(student_hint.shape)} vs {tuple(teacher_hint.shape)}"
        )
    return F.mse_loss(student_hint, teacher_hint, reduction="mean")


# ----------------------------------------------------------------------------- NST
def _poly_kernel_d2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, Ca, N), (B, Cb, N) -> (B, Cb, Ca) of k(a_i, b_j) = (a_i . b_j)^2 (d = 2, c = 0)."""
    return torch.einsum("bin,bjn->bji", a, b).pow(2)


def nst(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Neuron selectivity transfer (Huang & Wang 2017, "Like What You Like: Knowledge Distill via
    Neuron Selectivity Transfer": the NST term ``L_MMD^2(F_T, F_S)``, the squared MMD between the
    normalised neuron-selectivity maps of teacher and student in kernel form, with the polynomial kernel
    ``k(x, y) = (x^T y + c)^d``, ``d = 2``, ``c = 0``).

    Each channel's map (the spatial/temporal axes flattened) is one sample, L2-normalised; per
    batch element the loss is ``mean k(t, t') + mean k(s, s') - 2 mean k(s, t)`` over channel
    pairs, and the three means run over the whole batch, as RepDistiller's ``NSTLoss``
    (including its detached teacher-teacher term). The paper's ``lambda / 2`` weight is the
    method's.

    Student and teacher may have different channel counts ``C`` but must have the same spatial
    size (the axes after ``C``). Deviation from RepDistiller: it average-pools the larger map to
    the smaller one; we raise ``ValueError`` instead, so the method must make the sizes agree.

    Args:
        student_feat: (B, C_s, ...) with at least one axis after C_s.
        teacher_feat: (B, C_t, ...) with the same axes after C_t.
    """
    _check_same_batch("nst", student_feat, teacher_feat)
    if student_feat.dim() < 3 or teacher_feat.dim() < 3:
        raise ValueError(
            "nst: features must be (B, C, ...) with at least one spatial/temporal axis, got "
            f"{tuple(student_feat.shape)} and {tuple(teacher_feat.shape)}"
        )
    if student_feat.shape[2:] != teacher_feat.shape[2:]:
        raise ValueError(
            "nst: student and teacher feature maps must have the same spatial size, got "
            f"{tuple(student_feat.shape[2:])} vs {tuple(teacher_feat.shape[2:])}"
        )
    b = student_feat.shape[0]
    f_s = F.normalize(student_feat.reshape(b, student_feat.shape[1], -1), dim=2)
    f_t = F.normalize(teacher_feat.reshape(b, teacher_feat.shape[1], -1), dim=2)
    return (
        _poly_kernel_d2(f_t, f_t).mean().detach()
        + _poly_kernel_d2(f_s, f_s).mean()
        - 2.0 * _poly_kernel_d2(f_s, f_t).mean()
    )


def nst_over_batch(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """NST where a side has no spatial axis: the same ``L_MMD^2`` (Huang & Wang 2017, §3.2-3.3,
    "Like What You Like: Knowledge Distill via Neuron Selectivity Transfer", the squared MMD of
    the normalised neuron-selectivity patterns with the polynomial kernel
    ``k(x, y) = (x^T y)^2``; as :func:`nst`), with the *mini-batch* as the positions.

    Reconstruction of ours (the NST paper and RepDistiller compare spatial maps; a vector feature
    ``(B, C)`` has one position, on which every normalised channel is +-1 and :func:`nst` is
    identically 0 with no gradient). NST's sample is a neuron's selectivity pattern: the
    L2-normalised vector of that neuron's responses over the positions of one input. Here the
    pattern of a neuron is its vector of responses over the ``B`` inputs of the batch:

    1. a map ``(B, C, ...)`` is global-average-pooled over its spatial axes to ``(B, C)`` (one
       response per channel and input); a vector ``(B, C)`` is used as it is;
    2. each side is transposed to ``(C, B)`` and each row L2-normalised (a neuron's pattern over
       the batch);
    3. ``L = mean_{t, t'} k(t, t') + mean_{s, s'} k(s, s') - 2 mean_{s, t} k(s, t)`` over the
       neurons of teacher (``C_t``) and student (``C_s``), the teacher-teacher term detached, as
       in :func:`nst` (the kernel-form MMD of Huang & Wang's L_MMD^2 with ``d = 2``, ``c = 0``).

    The channel counts may differ; the batches must agree. With ``B = 1`` every pattern is +-1 and
    the loss is 0 (a batch of one input has no selectivity to compare).

    Args:
        student_feat: (B, C_s) or (B, C_s, ...).
        teacher_feat: (B, C_t) or (B, C_t, ...).
    """
    _check_same_batch("nst_over_batch", student_feat, teacher_feat)
    if student_feat.dim() < 2 or teacher_feat.dim() < 2:
        raise ValueError("nst_over_batch: features must be (B, C) or (B, C, ...), got "
                         f"{tuple(student_feat.shape)} and {tuple(teacher_feat.shape)}")
    b = student_feat.shape[0]
    s = student_feat.reshape(b, student_feat.shape[1], -1).mean(dim=2)
    t = teacher_feat.reshape(b, teacher_feat.shape[1], -1).mean(dim=2)
    # (1, C, B): one "batch element" whose channels are the neurons, whose positions are the inputs
    return nst(s.t().unsqueeze(0), t.t().unsqueeze(0))
