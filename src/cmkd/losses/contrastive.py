"""Contrastive distillation: CRD's memory bank and NCE objective (Tian, Krishnan & Isola
2020, eq. (18)-(19), arXiv v2+; RepDistiller's ``ContrastMemory`` / ``ContrastLoss``), which
CMCRD reuses with its per-score weights and masks."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cmkd.losses.base import NCE_EPS, _check_temperature, _check_unit


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
