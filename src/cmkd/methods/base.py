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

    _teacher_cache: dict | None = None

    @torch.no_grad()
    def cache_teacher_outputs(self, part, device, batch_size: int, budget_mb: float) -> bool:
        """Run every frozen teacher once over the training part and keep its outputs, so that
        :meth:`teacher_outputs` reads them by ``batch["index"]`` instead of re-running the teachers
        at every step of every epoch.

        Exact up to floating-point rounding: a frozen teacher is in eval mode (BatchNorm running
        statistics, no dropout) and the inputs are not augmented, so each sample's output does not
        depend on the epoch or on the other samples of its batch. Not used when the teachers train
        (``teachers_trainable``) or when the outputs would exceed ``budget_mb`` (then the teachers
        run per batch, as before). Returns whether the cache is in use.
        """
        from cmkd.models.base import Output

        self._teacher_cache = None
        if self.teachers_trainable or not self.teachers or budget_mb <= 0 or len(part) == 0:
            return False
        n = len(part)
        chunks: dict[str, list] = {role: [] for role in self.teachers}
        for s in range(0, n, batch_size):
            b = part.batch(torch.arange(s, min(s + batch_size, n)), device)
            for role, t in self.teachers.items():
                out = t(b)
                if not isinstance(out, Output) or not all(torch.is_tensor(v) for v in out.features.values()):
                    return False
                chunks[role].append(out)
            if s == 0:  # the size of the whole cache, from the first batch
                per_sample = sum(o.logits[:1].nbytes + sum(v[:1].nbytes for v in o.features.values())
                                 for o in (c[0] for c in chunks.values()))
                if per_sample * n / 2**20 > budget_mb:
                    return False
        self._teacher_cache = {
            role: Output(torch.cat([o.logits for o in outs]),
                         {k: torch.cat([o.features[k] for o in outs]) for k in outs[0].features})
            for role, outs in chunks.items()
        }
        return True

    @torch.no_grad()
    def teacher_outputs(self, batch: dict) -> dict:
        """Every teacher's output for ``batch``; from the cache (see :meth:`cache_teacher_outputs`)
        for training batches, whose ``index`` gives their positions in the training part."""
        if self._teacher_cache is not None and self.training and "index" in batch:
            idx = batch["index"]
            return {role: type(o)(o.logits[idx], {k: v[idx] for k, v in o.features.items()})
                    for role, o in self._teacher_cache.items()}
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
