"""The method interface (after mdistiller's Distiller): a method wraps the student and the frozen
teachers and returns ``(student_logits, {loss_name: tensor})`` from its training step; the
training loop sums the terms, back-propagates and logs every term.

Teachers are in eval mode and take no gradient unless the method says so (``teachers_trainable``).
They are kept in a plain dict, not as sub-modules, so that they are neither saved with the
student nor handed to the student's optimiser.

The whole contract is declared here: every hook (:meth:`configure`, :meth:`on_epoch_start`,
:meth:`after_step`, :meth:`epoch_summary`, :attr:`diagnostics`) has a no-op default, so the training loop calls each one
on every method without probing; the run context (seed, config key, device) is passed at
construction (``cls(student, teachers, params, task, n_classes, context=RunContext(...))``); the
parameters are resolved against the method's registry entry (its module's ``REGISTER``, gathered in
:data:`cmkd.methods.REGISTRY`: names, kinds, defaults, ranges), the single source of the defaults.
"""
from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cmkd.methods import REGISTRY, apply_preset, registered_name
from cmkd.models.base import Output
from cmkd.params import defaults_of, resolve


@dataclass(frozen=True)
class RunContext:
    """What a method knows of its run: the run seed (for its own random choices: stochastic guides,
    feedback batches ...), the config key (``methods.<key>``, named in errors) and the device."""

    seed: int | None = None
    key: str | None = None
    device: Any = None


class _ContextAtConstruction(type(nn.Module)):
    """Takes ``context=`` off the constructor call and sets it before ``__init__`` runs, so that
    every method accepts a run context without each subclass repeating the argument."""

    def __call__(cls, *args, context: RunContext | None = None, **kwargs):
        obj = cls.__new__(cls)
        object.__setattr__(obj, "context", context if context is not None else RunContext())
        obj.__init__(*args, **kwargs)
        return obj


class Method(nn.Module, metaclass=_ContextAtConstruction):
    #: the checkpoint roles this method needs (mirrors its REGISTER entry's ``roles``)
    roles: tuple = ()
    #: True: the method also trains the checkpoints it receives (else they are frozen, eval mode)
    teachers_trainable: bool = False
    #: the part its feedback phase trains on, a declared need that the training loop fulfils as
    #: ``parts["feedback"]`` in :meth:`configure` (:func:`cmkd.run.method_setup.method_parts`):
    #: ``"held_out"``, the split's hold-out of validation trials (``split.feedback_fraction``; None
    #: without one), or ``"train"``, the training part; None (the default): no ``parts["feedback"]``
    feedback_part: str | None = None
    #: the run context (set at construction, see :class:`RunContext`)
    context: RunContext = RunContext()
    #: values logged each step beside the loss terms, not optimised (a method sets it in its step)
    diagnostics: dict = types.MappingProxyType({})

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

    @property
    def run_seed(self) -> int | None:
        """The run seed (``context.seed``); read-only: the seed is given at construction."""
        return self.context.seed

    @run_seed.setter
    def run_seed(self, value) -> None:
        raise AttributeError("Method.run_seed is read-only: pass context=RunContext(seed=...) at construction")

    @classmethod
    def param_spec(cls) -> dict:
        """The parameters this class accepts: a ``defaults`` dict set on the class (or a base below
        :class:`Method`) if any, else its registry entry's declarations."""
        for c in cls.__mro__:
            if c is Method:
                break
            if "defaults" in c.__dict__:
                return c.__dict__["defaults"]
        name = registered_name(cls)
        return REGISTRY[name].params if name else {}

    @classmethod
    def default_params(cls) -> dict:
        return defaults_of(cls.param_spec())

    @property
    def method_key(self) -> str:
        """This method's config key, named in errors: ``methods.<key>`` (the class's registry name
        in angle brackets when no config key is known)."""
        return f"methods.{self.context.key or '<' + (registered_name(type(self)) or type(self).__name__) + '>'}"

    @property
    def params_key(self) -> str:
        """The config key of this method's parameters: ``methods.<key>.params``."""
        return f"{self.method_key}.params"

    def _check_params(self) -> None:
        spec, name = self.param_spec(), registered_name(type(self))
        params = apply_preset(name, self.params) if name and spec is REGISTRY[name].params else self.params
        self.params = resolve(params, spec, self.params_key)

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

    # ----------------------------------------------------------------- hooks (no-op defaults)
    def configure(self, parts=None, device=None, optimizer=None, **_) -> None:
        """Called once before training, with the split parts, the device and the student's
        optimiser (e.g. to build heads or a memory bank and add their parameters)."""

    def on_epoch_start(self, epoch: int, generator: torch.Generator) -> None:
        """Hook called before each training epoch (e.g. to refresh prototypes)."""

    def after_step(self, batch: dict) -> None:
        """Called after each optimiser step (e.g. a teacher update, a memory-bank write)."""

    def epoch_summary(self) -> dict:
        """Called after each training epoch: extra ``history.csv`` columns of that epoch
        (``{column: float}``, e.g. MKD's ``feedback_ratio``); none by default."""
        return {}

    def training_step(self, batch: dict) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError
