"""The prototype losses of CDGKD's multimodal teacher (§3.1): class prototypes eq. (1),
prototype probabilities eq. (2), the prototype loss eq. (3), convergence rates eq. (4), the
teacher objective eq. (5) and the rebalancing weights eq. (6)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cmkd.losses.base import _check_labels, _check_unit


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
