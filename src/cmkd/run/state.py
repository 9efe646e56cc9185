"""What the phases of a training run hand on (:mod:`cmkd.train`): the load phase's
:class:`RunData`, the build phase's :class:`Built`, the fit phase's :class:`Fitted`, the score
phase's :class:`Scores`, and :class:`RunKind`, the phases that differ between the network runs
and the trivial baselines (:mod:`cmkd.run.trivial_run`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass
class RunKind:
    """A kind of run: ``inputs(spec, teachers)`` the modalities it reads, ``build(data)`` and
    ``fit(data, built, out_dir)`` its own phases, ``degenerate(data, fitted, y_test, out)`` why its
    numbers mean nothing (or None). The load, score and write phases are shared."""

    name: str
    inputs: Callable
    build: Callable
    fit: Callable
    degenerate: Callable


@dataclass
class RunData:
    """The load phase's result: the prepared data, the split and its parts, the teachers'
    checkpoints and the run's set-up (device, mixed precision, log tag, clock)."""

    spec: dict
    kind: RunKind
    prep: Any
    task: str
    n_classes: int
    y: np.ndarray
    split: dict            # segment indices of train, val (and test, except in a tuning trial)
    split_hash: str
    parts: dict            # train, val (the selection trials), test; "feedback" when the method declares it
    held_out: Any          # the split's feedback hold-out of validation trials (split.feedback_fraction) or None
    feedback_fraction: float | None
    norm: dict
    data_mode: str
    val_counts: dict | None
    teachers: dict         # role -> checkpoint
    device: Any
    amp: Any
    tag: str
    t0: float
    t_data: float
    tuned: dict | None = None


@dataclass
class Built:
    """The build phase's result: the method (student and teachers), its optimiser, the student's
    model spec (saved in the checkpoint), its initial weights' provenance and the selection record."""

    method: Any
    optimizer: Any
    model_spec: dict
    initial_weights: Any
    selected: dict


@dataclass
class Fitted:
    """The fit phase's result: the epochs' history and the selected (best-on-validation) weights,
    loaded into the student."""

    history: list
    best_state: dict
    best_epoch: int
    best_score: float | None
    t_train0: float


@dataclass
class Scores:
    """The score phase's result: the selected weights on the validation and the test part."""

    val: dict
    test: dict
    test_logits: np.ndarray
    test_embedding: np.ndarray | None
    t_end: float
