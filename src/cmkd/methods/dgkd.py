"""Densely guided KD (Son, Na, Choi & Hwang 2021, "Densely Guided Knowledge Distillation using
Multiple Teacher Assistants", ICCV; arXiv:2009.08825), cross-modal.

Every network of a chain learns from *all* the larger networks trained before it: TA1 from the
teacher, TA2 from the teacher and TA1, the student from the teacher and every TA. A run of this
class takes any number of checkpoint roles (``requires: {teacher: teacher, ta1: ..., ta2: ...}``);
each role is one guide, in the order the config lists them. Objective:

    L = (1 - alpha) * CE(y, s) + alpha * 1/|S| sum_{g in S} T^2 KL(softmax(z_g / T) || softmax(z_s / T))

(:func:`cmkd.losses.dgkd`). DGKD writes the student loss as the sum over guides of
``(1 - lambda) L_CE + lambda L_KD``; with all guides kept that is ``|S|`` times our objective, i.e. the
same minimiser with the learning rate scaled by ``|S|``; the mean keeps the CE : KD balance of
plain :class:`cmkd.methods.kd.KD` whatever the number of guides.

Stochastic DGKD: "for each mini-batch, a teacher or teacher assistants are randomly dropped" (the
paper's abstract and §3). We draw, per training batch, one Bernoulli keep flag per guide with
``P(drop) = drop_rate``; if fewer than ``min_keep`` guides survive, randomly chosen dropped guides
are restored until ``min_keep`` are kept (documented choice: the student always has a guide).
``drop_rate: 0`` is dense guidance without drop.

The flags come from a private :class:`torch.Generator`, reseeded at each epoch from the run seed
and the epoch number, so they are reproducible for a seed and differ across seeds. The run seed
is, in order of precedence: a ``seed`` passed to :meth:`configure`; ``self.context.seed`` (given
at construction); else the ``initial_seed()`` of the batch-order generator the loop passes to
:meth:`on_epoch_start` (the run seed too; reading it does not advance that generator, so the
batch order stays the same as every other method's for the same seed). Nothing is drawn from the
global RNG, so dropout and initialisation are unaffected by the number of guides. For regression
the distillation term is the MSE between the student's and each kept guide's output.

Params: ``alpha`` (0.5), ``temperature`` (4), ``drop_rate`` (0.5, in [0, 1]), ``min_keep``
(1, at most the number of guides).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cmkd import losses
from cmkd.errors import ConfigError
from cmkd.methods.base import Method
from cmkd.methods.zoo_common import where

_SEED_MIX = 1_000_003  # epoch seeds: run seed * _SEED_MIX + epoch


class DGKD(Method):
    name = "dgkd"
    roles = ()  # variadic: any number of guides (teacher, ta1, ta2 ...)

    def __init__(self, student, teachers, params, task, n_classes):
        super().__init__(student, teachers, params, task, n_classes)
        self.guide_roles = list(self.teachers)
        self._seed = int(torch.initial_seed())  # replaced by the run seed at the first epoch
        self._gen = torch.Generator().manual_seed(self._seed)
        self._seed_from_configure = False
        self.last_keep: list[bool] | None = None

    def _check_params(self) -> None:
        super()._check_params()
        p = self.params
        if not self.teachers:
            raise ConfigError(f"{self.method_key}.requires: needs at least one guide checkpoint "
                              "(e.g. {teacher: teacher, ta1: ..., ta2: ...})")
        if p["min_keep"] > len(self.teachers):
            raise ConfigError(f"{where(self, 'min_keep')}: {p['min_keep']} exceeds the number of guides "
                              f"({len(self.teachers)}: {list(self.teachers)})")

    # ---------------------------------------------------------------- seeding
    def configure(self, parts=None, device=None, optimizer=None, seed=None, **_):
        if seed is not None:
            self._seed = int(seed)
            self._seed_from_configure = True
            self._gen.manual_seed(self._seed)

    def on_epoch_start(self, epoch, generator):
        if not self._seed_from_configure:
            if self.context.seed is not None:
                self._seed = int(self.context.seed)
            elif generator is not None:
                self._seed = int(generator.initial_seed())
        self._gen.manual_seed((self._seed * _SEED_MIX + int(epoch)) % (2**63))

    def draw_keep(self) -> list[bool]:
        """One keep flag per guide: Bernoulli(1 - drop_rate), then topped up to ``min_keep``."""
        n = len(self.guide_roles)
        u = torch.rand(n, generator=self._gen)
        order = torch.randperm(n, generator=self._gen)  # always drawn: the stream does not depend on u
        keep = (u >= self.params["drop_rate"]).tolist()
        missing = self.params["min_keep"] - sum(keep)
        for i in order.tolist():
            if missing <= 0:
                break
            if not keep[i]:
                keep[i] = True
                missing -= 1
        return keep

    # ---------------------------------------------------------------- the step
    def training_step(self, batch):
        out = self.student(batch)
        guides = self.teacher_outputs(batch)
        logits = [guides[r].logits for r in self.guide_roles]
        keep = self.draw_keep()
        self.last_keep = keep
        a = self.params["alpha"]
        terms = {"ce": (1 - a) * self.task_loss(out.logits, batch["y"])}
        if self.task == "regression":
            kept = [g for g, k in zip(logits, keep) if k]
            kd = torch.stack([F.mse_loss(out.logits, g) for g in kept]).mean() if kept else (out.logits * 0).sum()
        else:
            kd = losses.dgkd(out.logits, logits, self.params["temperature"], keep)
        terms["dgkd"] = a * kd
        return out.logits, terms


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "dgkd": {"variadic_roles": True, "description": "Son et al. 2021 densely guided KD (guides: teacher + TAs)",
             "extends": ["temperature"],
             "search": {"alpha": "mix", "temperature": "temperature"},
             "params": {"alpha": {"default": 0.5, "lo": 0.0, "hi": 1.0},
                        "drop_rate": {"default": 0.5, "lo": 0.0, "hi": 1.0},
                        "min_keep": {"default": 1, "kind": "int", "lo": 0}}},
}

METHODS = {"dgkd": DGKD}
