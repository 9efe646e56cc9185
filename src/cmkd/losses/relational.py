"""Relational distillation: the student matches relations between the samples of a batch
(SP, Tung & Mori 2019, L_SP; RKD, Park et al. 2019, L_RKD-D + L_RKD-A; PKT, Passalis & Tefas
2018, the cosine-kernel KL)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cmkd.losses.base import _check_same_batch, _zero_like_graph


def sp(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """Similarity-preserving loss (Tung & Mori 2019, "Similarity-Preserving Knowledge
    Distillation", ICCV: the batch similarity ``G = Q Q^T`` of the flattened activations, each row
    L2-normalised, and the loss ``L_SP = 1/b^2 ||G_t - G_s||_F^2``).

    Features are flattened after the batch axis, so student and teacher may differ in size.
    Matches RepDistiller's ``Similarity.similarity_loss`` (row normalisation by
    ``F.normalize``, eps 1e-12). One layer pair; the weight gamma is the method's.
    """
    bsz = _check_same_batch("sp", student_feat, teacher_feat)
    f_s = student_feat.reshape(bsz, -1)
    f_t = teacher_feat.reshape(bsz, -1)
    g_s = F.normalize(f_s @ f_s.t(), dim=1)
    g_t = F.normalize(f_t @ f_t.t(), dim=1)
    diff = g_t - g_s
    return (diff * diff).sum() / (bsz * bsz)


# ----------------------------------------------------------------------------- RKD
def _pairwise_distance(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distance matrix with a zero diagonal (RepDistiller ``RKDLoss.pdist``)."""
    sq = e.pow(2).sum(dim=1)
    d2 = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * (e @ e.t())).clamp(min=eps)
    eye = torch.eye(e.shape[0], dtype=torch.bool, device=e.device)
    return d2.sqrt().masked_fill(eye, 0.0)


def _angles(e: torch.Tensor) -> torch.Tensor:
    """``cos`` of the angle at each anchor i between j and k: <e_ij, e_ik>, e_ij = unit(x_j - x_i)."""
    diff = e.unsqueeze(0) - e.unsqueeze(1)  # [i, j] = x_j - x_i
    unit = F.normalize(diff, p=2, dim=2)
    return torch.bmm(unit, unit.transpose(1, 2)).reshape(-1)


def rkd(
    student_emb: torch.Tensor,
    teacher_emb: torch.Tensor,
    w_distance: float = 25.0,
    w_angle: float = 50.0,
) -> torch.Tensor:
    """Relational knowledge distillation (Park et al. 2019, "Relational Knowledge Distillation",
    CVPR: the distance-wise loss ``L_RKD-D`` with the distance potential normalised by the mean
    pairwise distance ``mu``, and the angle-wise loss ``L_RKD-A`` on the cosine of the angle formed
    by three examples; both with the Huber loss, delta = 1).

    ``w_distance * smooth_l1(psi_D(s), psi_D(t)) + w_angle * smooth_l1(psi_A(s), psi_A(t))``,
    as RepDistiller's ``RKDLoss``: distances are divided by the mean of the positive
    off-diagonal distances of the same batch; angles use all ``B^3`` triplets (degenerate ones,
    with a zero difference vector, contribute 0 on both sides); smooth-L1 is averaged over
    entries. Teacher-side potentials are computed without gradient (as RepDistiller).

    A batch of a single sample has no pair: the loss is then a zero that keeps the student's
    graph (so a short last batch does not turn the loss into NaN).
    """
    bsz = _check_same_batch("rkd", student_emb, teacher_emb)
    student = student_emb.reshape(bsz, -1)
    teacher = teacher_emb.reshape(bsz, -1)
    if bsz < 2:
        return _zero_like_graph(student)

    with torch.no_grad():
        t_d = _pairwise_distance(teacher)
        t_d = t_d / t_d[t_d > 0].mean()
        t_angle = _angles(teacher)
    s_d = _pairwise_distance(student)
    s_d = s_d / s_d[s_d > 0].mean()
    loss_d = F.smooth_l1_loss(s_d, t_d)

    s_angle = _angles(student)
    loss_a = F.smooth_l1_loss(s_angle, t_angle)
    return float(w_distance) * loss_d + float(w_angle) * loss_a


# ----------------------------------------------------------------------------- PKT
def pkt(student_emb: torch.Tensor, teacher_emb: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Probabilistic knowledge transfer (Passalis & Tefas 2018, "Learning Deep Representations
    with Probabilistic Knowledge Transfer", ECCV: conditional probabilities from the cosine
    similarity kernel, ``K(a, b) = (cos(a, b) + 1) / 2``, ``p_{i|j} = K_ij / sum_k K_kj``, and the
    KL divergence of the teacher's distribution to the student's).

    Matches RepDistiller's ``PKT.cosine_similarity_loss``: rows normalised by ``norm + eps``,
    similarity rows (not columns) normalised to sum to one (the kernel matrix is symmetric, so this
    is the same conditional up to a transpose), and
    ``mean_ij p_t[i,j] * log((p_t[i,j] + eps) / (p_s[i,j] + eps))`` -- a mean over all ``B^2``
    entries, not a per-row sum. (RepDistiller also zeroes NaNs after normalising; with
    ``norm + eps`` in the denominator no NaN can arise from finite input, so we omit that step.)

    Inputs are flattened after the batch axis; student and teacher dims may differ.
    """
    bsz = _check_same_batch("pkt", student_emb, teacher_emb)
    s = student_emb.reshape(bsz, -1)
    t = teacher_emb.reshape(bsz, -1)
    s = s / (s.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)
    t = t / (t.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)
    sim_s = (s @ s.t() + 1.0) / 2.0
    sim_t = (t @ t.t() + 1.0) / 2.0
    p_s = sim_s / sim_s.sum(dim=1, keepdim=True)
    p_t = sim_t / sim_t.sum(dim=1, keepdim=True)
    return torch.mean(p_t * torch.log((p_t + eps) / (p_s + eps)))
