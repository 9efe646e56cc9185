"""What every loss family shares: the argument checks (a bad shape or argument is a
programming error and raises ``ValueError``) and the graph-keeping zero."""
from __future__ import annotations

import torch

#: Added to NCE denominators, as in RepDistiller's ``ContrastLoss``.
NCE_EPS = 1e-7


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


def _check_labels(name: str, labels: torch.Tensor, batch: int, n_classes: int) -> torch.Tensor:
    if labels.dim() != 1 or labels.shape[0] != batch:
        raise ValueError(f"{name}: labels must be (B,) = ({batch},), got {tuple(labels.shape)}")
    if labels.dtype not in (torch.int32, torch.int64, torch.uint8, torch.int16, torch.int8):
        raise ValueError(f"{name}: labels must be integer class indices, got {labels.dtype}")
    labels = labels.long()
    if batch and (int(labels.min()) < 0 or int(labels.max()) >= int(n_classes)):
        raise ValueError(f"{name}: labels must lie in [0, {n_classes})")
    return labels
