"""Distillation and training losses: pure functions of tensors, one per equation.

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
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "kd",
    "fitnets",
    "nst",
    "sp",
    "rkd",
    "pkt",
    "CRDMemory",
    "crd_nce_loss",
    "crd",
    "dgkd",
    "kl_current_guide",
    "class_prototypes",
    "prototype_probs",
    "prototype_loss",
    "convergence_rate",
    "rebalance_weights",
    "teacher_loss",
    "cdgkd",
]

#: Added to NCE denominators, as in RepDistiller's ``ContrastLoss``.
NCE_EPS = 1e-7


# ----------------------------------------------------------------------------- helpers
def _check_same_batch(name: str, a: torch.Tensor, b: torch.Tensor) -> int:
    if a.dim() < 1 or b.dim() < 1:
        raise ValueError(f"{name}: inputs need a batch axis, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name}: student and teacher batch sizes differ: {a.shape[0]} vs {b.shape[0]}"
        )
    return a.shape[0]


def _check_logits(name: str, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    if student_logits.dim() != 2:
        raise ValueError(f"{name}: logits must be (B, n_classes), got {tuple(student_logits.shape)}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"{name}: student and teacher logits differ in shape: "
            f"{tuple(student_logits.shape)} vs {tuple(teacher_logits.shape)}"
        )


def _check_temperature(name: str, temperature: float) -> None:
    if not float(temperature) > 0.0:
        raise ValueError(f"{name}: temperature must be > 0, got {temperature}")


def _check_unit(name: str, key: str, value: float) -> None:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name}: {key} must lie in [0, 1], got {value}")


def _zero_like_graph(t: torch.Tensor) -> torch.Tensor:
    """A 0-d zero that stays attached to ``t``'s graph (backward gives zero gradients)."""
    return (t * 0.0).sum()


# ----------------------------------------------------------------------------- KD
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


# ----------------------------------------------------------------------------- FitNets
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


# ----------------------------------------------------------------------------- SP
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


# ----------------------------------------------------------------------------- CRD
class CRDMemory(nn.Module):
    """Memory bank for contrastive representation distillation (Tian, Krishnan & Isola 2020,
    "Contrastive Representation Distillation", ICLR: the memory buffer and the NCE objective of
    eq. (18)-(19)).

    Holds one L2-normalised embedding per training sample for the student (``memory_student``)
    and for the teacher (``memory_teacher``), both ``n_data x feat_dim``, as RepDistiller's
    ``ContrastMemory``:

    - Initialisation: uniform in ``[-1/sqrt(D/3), 1/sqrt(D/3)]`` from torch's global generator
      (RepDistiller's draw), then each row L2-normalised (deviation: RepDistiller leaves the
      initial rows unnormalised; their expected norm is 1 anyway).
    - Update (:meth:`update`), after the scores are computed: ``m <- normalise(mu * m + (1 - mu) v)``
      at the batch's indices, with momentum ``mu``; only in training mode (see :func:`crd`).
    - Negatives (:meth:`sample`): ``k`` per positive, drawn uniformly with replacement with
      ``torch.randint``. Without labels, from the other ``n_data - 1`` samples (deviation:
      RepDistiller's alias sampler may draw the positive itself as a negative). With labels
      (:meth:`set_labels`), class-aware: from the samples of *other classes* only, as the
      training path of RepDistiller (``CIFAR100InstanceSample``, ``mode='exact'``: negatives from
      ``cls_negative[target]``, with replacement) and the CMCRD code do; the anchor's own class
      never appears among its negatives. ``k = min(configured k, n_data - 1)``, so a small data
      set still gets a valid problem. Deterministic given torch's global seed.
    - Normalisation constants ``Z`` (``z_student``, ``z_teacher``): ``-1`` until the first call of
      :func:`crd`, which sets each to ``mean(exp(score / T)) * n_data`` of that first batch and
      keeps it fixed thereafter (RepDistiller). They are buffers, so they travel with checkpoints.

    Args:
        n_data: number of training samples (the indices passed to :func:`crd` are in
            ``[0, n_data)``); at least 2.
        feat_dim: embedding dimension (the method's projection heads output this).
        k: configured number of negatives per positive (RepDistiller's default is 16384).
        momentum: memory momentum ``mu`` in [0, 1] (RepDistiller's default 0.5).
    """

    def __init__(self, n_data: int, feat_dim: int, k: int = 16384, momentum: float = 0.5) -> None:
        super().__init__()
        if int(n_data) < 2:
            raise ValueError(f"CRDMemory: n_data must be >= 2 (one positive, one negative), got {n_data}")
        if int(feat_dim) < 1:
            raise ValueError(f"CRDMemory: feat_dim must be >= 1, got {feat_dim}")
        if int(k) < 1:
            raise ValueError(f"CRDMemory: k must be >= 1, got {k}")
        _check_unit("CRDMemory", "momentum", momentum)
        self.n_data = int(n_data)
        self.feat_dim = int(feat_dim)
        self.k_configured = int(k)
        self.k = min(self.k_configured, self.n_data - 1)
        self.momentum = float(momentum)
        stdv = 1.0 / math.sqrt(self.feat_dim / 3.0)
        for name in ("memory_student", "memory_teacher"):
            init = torch.rand(self.n_data, self.feat_dim).mul_(2 * stdv).add_(-stdv)
            self.register_buffer(name, F.normalize(init, dim=1))
        self.register_buffer("z_student", torch.tensor(-1.0))
        self.register_buffer("z_teacher", torch.tensor(-1.0))
        self.labels: torch.Tensor | None = None  # set_labels(): class-aware negatives
        self._pools: dict[int, torch.Tensor] = {}

    def set_labels(self, labels: torch.Tensor | None) -> None:
        """Class labels of the ``n_data`` samples (``(n_data,)`` integers): from now on
        :meth:`sample` draws each anchor's negatives from the samples of the other classes only.
        ``None`` returns to uniform sampling. Every class present needs at least one sample of
        another class (a single-class training part has no negative): ``ValueError`` otherwise."""
        if labels is None:
            self.labels, self._pools = None, {}
            return
        labels = torch.as_tensor(labels)
        if labels.dim() != 1 or labels.shape[0] != self.n_data or labels.dtype.is_floating_point:
            raise ValueError(f"CRDMemory.set_labels: labels must be ({self.n_data},) integers, got "
                             f"{labels.dtype} {tuple(labels.shape)}")
        labels = labels.to(device=self.memory_student.device, dtype=torch.long)
        classes = torch.unique(labels).tolist()
        if len(classes) < 2:
            raise ValueError(f"CRDMemory.set_labels: class-aware negatives need two or more classes, got {classes}")
        self.labels = labels
        self._pools = {int(c): torch.nonzero(labels != c).squeeze(1) for c in classes}

    def extra_repr(self) -> str:
        return (
            f"n_data={self.n_data}, feat_dim={self.feat_dim}, k={self.k} "
            f"(configured {self.k_configured}), momentum={self.momentum}"
        )

    def check_index(self, index: torch.Tensor) -> torch.Tensor:
        """Validate a batch of sample indices: 1-d, integer, unique, in ``[0, n_data)``."""
        if index.dim() != 1 or index.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"CRDMemory: index must be a 1-d integer tensor, got {index.dtype} {tuple(index.shape)}")
        index = index.to(device=self.memory_student.device, dtype=torch.long)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.n_data):
            raise ValueError(f"CRDMemory: index out of range [0, {self.n_data})")
        if torch.unique(index).numel() != index.numel():
            raise ValueError("CRDMemory: indices within a batch must be unique (the memory update needs it)")
        return index

    def sample(self, index: torch.Tensor) -> torch.Tensor:
        """``(B, k + 1)`` contrast indices: column 0 the positive ``index``, then ``k`` negatives
        drawn uniformly (with replacement), via ``torch.randint``: from the samples of the other
        classes when labels are set (:meth:`set_labels`), else from all the other samples."""
        index = self.check_index(index)
        if self.labels is not None:
            negatives = torch.empty(index.shape[0], self.k, dtype=torch.long, device=index.device)
            anchor_cls = self.labels[index]
            for c in torch.unique(anchor_cls).tolist():
                rows = torch.nonzero(anchor_cls == c).squeeze(1)
                pool = self._pools[int(c)].to(index.device)
                r = torch.randint(0, pool.shape[0], (rows.shape[0], self.k), device=index.device)
                negatives[rows] = pool[r]
            return torch.cat([index.unsqueeze(1), negatives], dim=1)
        r = torch.randint(0, self.n_data - 1, (index.shape[0], self.k), device=index.device)
        negatives = r + (r >= index.unsqueeze(1)).long()  # skip the positive: uniform on the rest
        return torch.cat([index.unsqueeze(1), negatives], dim=1)

    @torch.no_grad()
    def update(self, student_emb: torch.Tensor, teacher_emb: torch.Tensor, index: torch.Tensor) -> None:
        """Momentum update of both banks at ``index`` with (already normalised) embeddings."""
        index = self.check_index(index)
        mu = self.momentum
        for bank, v in ((self.memory_student, student_emb), (self.memory_teacher, teacher_emb)):
            mixed = bank.index_select(0, index) * mu + v.detach().to(bank.dtype) * (1.0 - mu)
            bank.index_copy_(0, index, F.normalize(mixed, dim=1))


def crd_nce_loss(x: torch.Tensor, n_data: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """NCE loss of CRD (Tian et al. 2020, eq. (18)-(19); RepDistiller's ``ContrastLoss``).

    ``x`` holds, per anchor, the normalised scores ``exp(score / T) / Z`` of its positive (column
    0) and of its ``K`` negatives (columns 1..K); shape ``(B, K + 1)`` (a trailing size-1 axis,
    as RepDistiller's ``(B, K + 1, 1)``, is accepted). With the uniform noise distribution
    ``Pn = 1 / n_data``:

    ``P(D=1 | pos) = x_0 / (x_0 + K Pn + eps)``, ``P(D=0 | neg) = K Pn / (x_k + K Pn + eps)``,

    ``loss = -(sum_b log P(D=1 | pos_b) + sum_{b,k} log P(D=0 | neg_bk)) / B``.

    ``eps`` is :data:`NCE_EPS` (1e-7). ``Pn`` stays ``1 / n_data`` although :class:`CRDMemory`
    draws negatives from the other ``n_data - 1`` samples, as in RepDistiller.

    ``mask`` (optional, ``(B,)``): a per-anchor factor on both log terms of that anchor,
    ``loss = -sum_b m_b (log P(D=1 | pos_b) + sum_k log P(D=0 | neg_bk)) / B`` (CMCRD's
    teacher-correctness mask, :mod:`cmkd.methods.cmcrd`; the divisor stays ``B``). ``None``: all 1.
    """
    if x.dim() == 3 and x.shape[2] == 1:
        x = x.squeeze(2)
    if x.dim() != 2 or x.shape[1] < 2:
        raise ValueError(f"crd_nce_loss: x must be (B, K + 1) with K >= 1, got {tuple(x.shape)}")
    if int(n_data) < 1:
        raise ValueError(f"crd_nce_loss: n_data must be >= 1, got {n_data}")
    bsz = x.shape[0]
    k = x.shape[1] - 1
    k_pn = k * (1.0 / float(n_data))
    p_pos = x[:, 0]
    log_d1 = torch.log(p_pos / (p_pos + k_pn + NCE_EPS))
    p_neg = x[:, 1:]
    log_d0 = torch.log(k_pn / (p_neg + k_pn + NCE_EPS))
    if mask is not None:
        if mask.shape != (bsz,):
            raise ValueError(f"crd_nce_loss: mask must be ({bsz},), got {tuple(mask.shape)}")
        mask = mask.to(log_d1.dtype)
        log_d1 = log_d1 * mask
        log_d0 = log_d0 * mask.unsqueeze(1)
    return -(log_d1.sum() + log_d0.sum()) / bsz


def crd(
    student_emb: torch.Tensor,
    teacher_emb: torch.Tensor,
    index: torch.Tensor,
    memory: CRDMemory,
    temperature: float = 0.07,
    contrast_idx: torch.Tensor | None = None,
    score_weights: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Contrastive representation distillation loss (Tian et al. 2020, NCE objective
    eq. (18)-(19)), the two symmetric halves of RepDistiller's ``CRDLoss``.

    Steps:

    1. ``student_emb`` and ``teacher_emb`` (``(B, feat_dim)``, the outputs of the method's
       projection heads) are L2-normalised here.
    2. Contrast indices: ``contrast_idx`` if given -- ``(B, K + 1)``, column 0 equal to ``index``
       (RepDistiller's convention; a method may pass class-aware negatives this way) -- else
       ``memory.sample(index)`` (``K = memory.k``).
    3. Student anchor against the teacher bank, teacher anchor against the student bank:
       ``out_s = exp(<memory_teacher[idx], s> / T)``, ``out_t = exp(<memory_student[idx], t> / T)``;
       the banks are constants (no gradient).
    4. ``Z``: on the first call, ``memory.z_student = mean(out_s) * n_data`` (likewise for the
       teacher), then fixed; ``out /= Z``.
    5. ``loss = crd_nce_loss(out_s, n_data) + crd_nce_loss(out_t, n_data)``.

       Options of CMCRD's "nce" reading (:mod:`cmkd.methods.cmcrd`; off by default, and then the
       arithmetic is RepDistiller's): ``score_weights`` ``(B,)`` multiplies every normalised score
       of anchor ``b`` (its positive and its ``K`` negatives, both directions) by ``w_b`` after
       step 4 (``Z`` is set from the unweighted scores); ``mask`` ``(B,)`` is passed to
       :func:`crd_nce_loss` for both directions.
    6. If ``memory.training``: momentum update of both banks at ``index`` with this batch's
       normalised embeddings (after the scores, as RepDistiller). In eval mode the memory is
       left untouched, so a validation pass does not write into the training bank.

    Gradient reaches both embeddings (the teacher's projection head is trained in CRD; the
    teacher backbone is frozen by the method). ``index`` is the batch's positions in the training
    set, unique within the batch.
    """
    if student_emb.dim() != 2 or teacher_emb.dim() != 2:
        raise ValueError(
            f"crd: embeddings must be (B, feat_dim), got {tuple(student_emb.shape)} and {tuple(teacher_emb.shape)}"
        )
    if student_emb.shape != teacher_emb.shape:
        raise ValueError(
            f"crd: student and teacher embeddings differ in shape: {tuple(student_emb.shape)} vs "
            f"{tuple(teacher_emb.shape)} (project both to the memory's feat_dim)"
        )
    if student_emb.shape[1] != memory.feat_dim:
        raise ValueError(f"crd: embedding dim {student_emb.shape[1]} != memory feat_dim {memory.feat_dim}")
    _check_temperature("crd", temperature)
    index = memory.check_index(index)
    if index.shape[0] != student_emb.shape[0]:
        raise ValueError(f"crd: {index.shape[0]} indices for a batch of {student_emb.shape[0]}")
    if contrast_idx is None:
        contrast_idx = memory.sample(index)
    else:
        contrast_idx = contrast_idx.to(device=index.device, dtype=torch.long)
        if contrast_idx.dim() != 2 or contrast_idx.shape[0] != index.shape[0] or contrast_idx.shape[1] < 2:
            raise ValueError(f"crd: contrast_idx must be (B, K + 1) with K >= 1, got {tuple(contrast_idx.shape)}")
        if not torch.equal(contrast_idx[:, 0], index):
            raise ValueError("crd: contrast_idx[:, 0] must be the positives (equal to index)")
        if int(contrast_idx.min()) < 0 or int(contrast_idx.max()) >= memory.n_data:
            raise ValueError(f"crd: contrast_idx out of range [0, {memory.n_data})")

    s = F.normalize(student_emb, dim=1)
    t = F.normalize(teacher_emb, dim=1)
    bsz, n_contrast = contrast_idx.shape
    t_ = float(temperature)
    w_t = memory.memory_teacher.index_select(0, contrast_idx.reshape(-1)).reshape(bsz, n_contrast, -1)
    w_s = memory.memory_student.index_select(0, contrast_idx.reshape(-1)).reshape(bsz, n_contrast, -1)
    out_s = torch.exp(torch.bmm(w_t, s.unsqueeze(2)).squeeze(2) / t_)
    out_t = torch.exp(torch.bmm(w_s, t.unsqueeze(2)).squeeze(2) / t_)

    with torch.no_grad():
        if float(memory.z_student) < 0:
            memory.z_student.fill_(float(out_s.mean()) * memory.n_data)
        if float(memory.z_teacher) < 0:
            memory.z_teacher.fill_(float(out_t.mean()) * memory.n_data)
    out_s = out_s / memory.z_student
    out_t = out_t / memory.z_teacher
    if score_weights is not None:
        if score_weights.shape != (bsz,):
            raise ValueError(f"crd: score_weights must be ({bsz},), got {tuple(score_weights.shape)}")
        w = score_weights.detach().to(out_s.dtype).unsqueeze(1)
        out_s, out_t = out_s * w, out_t * w

    loss = crd_nce_loss(out_s, memory.n_data, mask) + crd_nce_loss(out_t, memory.n_data, mask)
    if memory.training:
        memory.update(s, t, index)
    return loss


# ----------------------------------------------------------------------------- DGKD
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


# ----------------------------------------------------------------------------- CDGKD §3.1
def class_prototypes(features: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Class prototypes, CDGKD eq. (1): ``c_k = 1/N_k sum_{i: y_i = k} z_i``, shape ``(K, D)``.

    A class with no sample gets a row of NaN (there is no mean to take). The prototype functions
    below treat a NaN row as an absent class (excluded from the softmax of eq. (2)); a sample
    whose own class is absent is an error there. Gradient flows into ``features`` (detach
    before calling to hold the prototypes fixed).
    """
    if features.dim() != 2:
        raise ValueError(f"class_prototypes: features must be (B, D), got {tuple(features.shape)}")
    labels = _check_labels("class_prototypes", labels, features.shape[0], n_classes)
    onehot = F.one_hot(labels, int(n_classes)).to(features.dtype)  # (B, K)
    counts = onehot.sum(dim=0)  # (K,)
    sums = onehot.t() @ features  # (K, D)
    means = sums / counts.clamp(min=1.0).unsqueeze(1)
    nan = torch.full_like(means, float("nan"))
    return torch.where((counts > 0).unsqueeze(1), means, nan)


def _check_labels(name: str, labels: torch.Tensor, batch: int, n_classes: int) -> torch.Tensor:
    if labels.dim() != 1 or labels.shape[0] != batch:
        raise ValueError(f"{name}: labels must be (B,) = ({batch},), got {tuple(labels.shape)}")
    if labels.dtype not in (torch.int32, torch.int64, torch.uint8, torch.int16, torch.int8):
        raise ValueError(f"{name}: labels must be integer class indices, got {labels.dtype}")
    labels = labels.long()
    if batch and (int(labels.min()) < 0 or int(labels.max()) >= int(n_classes)):
        raise ValueError(f"{name}: labels must lie in [0, {n_classes})")
    return labels


def _prototype_log_probs(name: str, features: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """log p(y = true class | x), CDGKD eq. (2), ``(B,)``."""
    if features.dim() != 2 or prototypes.dim() != 2 or features.shape[1] != prototypes.shape[1]:
        raise ValueError(
            f"{name}: features (B, D) and prototypes (K, D) must agree in D, got "
            f"{tuple(features.shape)} and {tuple(prototypes.shape)}"
        )
    labels = _check_labels(name, labels, features.shape[0], prototypes.shape[0])
    absent = torch.isnan(prototypes).any(dim=1)  # (K,)
    if bool(absent[labels].any()):
        missing = sorted(set(labels[absent[labels]].tolist()))
        raise ValueError(f"{name}: no prototype (NaN row) for the true class of some samples: {missing}")
    protos = torch.where(absent.unsqueeze(1), torch.zeros_like(prototypes), prototypes)
    d = (features.unsqueeze(1) - protos.unsqueeze(0)).pow(2).sum(dim=2)  # (B, K) squared distances
    logits = (-d).masked_fill(absent.unsqueeze(0), float("-inf"))
    log_p = F.log_softmax(logits, dim=1)
    return log_p.gather(1, labels.unsqueeze(1)).squeeze(1)


def prototype_probs(features: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """CDGKD eq. (2): ``p_i = softmax_k(-||z_i - c_k||^2)`` at the true class, shape ``(B,)``.

    ``d`` is the squared Euclidean distance, as the paper defines it. Prototype rows that are NaN
    (an absent class, see :func:`class_prototypes`) are left out of the softmax; a sample whose
    true class has no prototype raises ``ValueError``. These are the ``p_i`` that eq. (4) sums.
    """
    return _prototype_log_probs("prototype_probs", features, labels, prototypes).exp()


def prototype_loss(features: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Prototype loss, CDGKD eq. (3): ``1/N sum_i -log p_i(y = y_i | x_i)`` with ``p`` of eq. (2)
    (computed in log space, ``log_softmax``, for stability). Same conventions as
    :func:`prototype_probs`."""
    return -_prototype_log_probs("prototype_loss", features, labels, prototypes).mean()


def convergence_rate(p_true: torch.Tensor) -> torch.Tensor:
    """Convergence rate of a modality, CDGKD eq. (4): ``r_t^m = sum_{i in B_t} p_i^m``.

    ``p_true`` is :func:`prototype_probs` of the batch, ``(B,)``. Returns a 0-d tensor; it keeps
    the graph of ``p_true`` (:func:`rebalance_weights` turns it into a plain float anyway).
    Note the sum (not mean) makes ``r`` scale with the batch size; eq. (6) uses only the ratio of
    two modalities' rates on the same batch, so the scale cancels.
    """
    if p_true.dim() != 1:
        raise ValueError(f"convergence_rate: p_true must be (B,), got {tuple(p_true.shape)}")
    return p_true.sum()


def rebalance_weights(r_visual: float | torch.Tensor, r_eeg: float | torch.Tensor) -> tuple[float, float]:
    """Modality weights from convergence rates, CDGKD eq. (6).

    With ``rho = r_eeg / r_visual``:

    - ``rho > 1`` (EEG converges faster):  ``lambda_v = clip(rho - 1, 0, 1)``, ``lambda_e = 0``;
    - ``rho <= 1`` (visual at least as fast): ``lambda_v = 0``, ``lambda_e = clip(1/rho - 1, 0, 1)``.

    The faster modality (larger ``r``) gets weight 0; at ``rho = 1`` both are 0. Accepts floats or
    0-d tensors and returns Python floats, so no gradient flows through the weights.

    Edge cases (documented choices, the paper does not discuss them): negative or NaN rates raise
    ``ValueError``; if exactly one rate is 0, the other modality is infinitely faster and the
    zero-rate modality gets weight 1; if both are 0, both weights are 0 (nothing to compare).
    """
    rv = float(r_visual.detach()) if isinstance(r_visual, torch.Tensor) else float(r_visual)
    re = float(r_eeg.detach()) if isinstance(r_eeg, torch.Tensor) else float(r_eeg)
    if math.isnan(rv) or math.isnan(re) or rv < 0 or re < 0:
        raise ValueError(f"rebalance_weights: rates must be non-negative numbers, got r_visual={rv}, r_eeg={re}")
    if rv == 0.0 and re == 0.0:
        return 0.0, 0.0
    if rv == 0.0:  # rho = +inf > 1
        return 1.0, 0.0
    rho = re / rv
    if rho > 1.0:
        return min(max(rho - 1.0, 0.0), 1.0), 0.0
    if re == 0.0:  # 1/rho = +inf
        return 0.0, 1.0
    return 0.0, min(max(rv / re - 1.0, 0.0), 1.0)


def teacher_loss(
    ce: torch.Tensor,
    proto_visual: torch.Tensor,
    proto_eeg: torch.Tensor,
    lambda_visual: float,
    lambda_eeg: float,
    alpha: float,
) -> torch.Tensor:
    """Multimodal teacher objective, CDGKD eq. (5):
    ``(1 - alpha) * L_CE + alpha * (lambda_v * L_proto^v + lambda_e * L_proto^e)``.

    ``ce`` is the cross-entropy of the fused classifier; ``proto_*`` are :func:`prototype_loss`
    of each modality; ``lambda_*`` come from :func:`rebalance_weights`; ``alpha`` in [0, 1].
    """
    _check_unit("teacher_loss", "alpha", alpha)
    a = float(alpha)
    return (1.0 - a) * ce + a * (float(lambda_visual) * proto_visual + float(lambda_eeg) * proto_eeg)


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
