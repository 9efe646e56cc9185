"""The method interface (after mdistiller's Distiller): a method wraps the student and the frozen
teachers and returns ``(student_logits, {loss_name: tensor})`` from its training step; the
training loop sums the terms, back-propagates and logs every term.

Teachers are in eval mode and take no gradient unless the method says so (``teachers_trainable``).
They are kept in a plain dict, not as sub-modules, so that they are neither saved with the
student nor handed to the student's optimiser.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Method(nn.Module):
    #: the checkpoint roles this method needs (mirrors cmkd.methods.REGISTRY)
    roles: tuple = ()
    teachers_trainable: bool = False

    def __init__(self, student: nn.Module, teachers: dict[str, nn.Module], params: dict, task: str, n_classes: int):
        super().__init__()
        self.student = student
        self.teachers = dict(teachers)
        self.params = dict(params or {})
        self.task = task
        self.n_classes = n_classes
        if not self.teachers_trainable:
            for t in self.teachers.values():
                t.eval()
                t.requires_grad_(False)
        self._check_params()

    #: parameter names and defaults this method accepts (unknown keys are a config error)
    defaults: dict = {}

    def _check_params(self) -> None:
        from cmkd.errors import ConfigError

        unknown = set(self.params) - set(self.defaults)
        if unknown:
            raise ConfigError(f"methods.<{type(self).__name__}>.params: unknown key(s) {sorted(unknown)} (accepted: {sorted(self.defaults)})")
        self.params = {**self.defaults, **self.params}

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.teachers_trainable:
            for t in self.teachers.values():
                t.eval()
        return self

    def to(self, *args, **kwargs):
        super().to(*args, **kwargs)
        for t in self.teachers.values():
            t.to(*args, **kwargs)
        return self

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]

    @torch.no_grad()
    def teacher_outputs(self, batch: dict) -> dict:
        return {role: t(batch) for role, t in self.teachers.items()}

    def task_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy for classification, mean squared error for regression (targets in [0, 1])."""
        if self.task == "regression":
            return F.mse_loss(logits.squeeze(-1), y.float())
        return F.cross_entropy(logits, y)

    def on_epoch_start(self, epoch: int, generator: torch.Generator) -> None:
        """Hook called before each training epoch (e.g. to refresh prototypes)."""

    def training_step(self, batch: dict) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError
