"""Trivial baselines: the floor every number of a table is read against.

Neither looks at the input: they fit the training part's labels only, build no network and train
for no epoch, and go through the same cells, splits, evaluation, statistics and provenance as every
other method (the training loop skips the epochs of a method whose class has ``trivial = True``).

- ``majority``: the constant that minimises the training loss: the majority class of the training
  part (classification; the logits are the log class frequencies of the training part, so the
  argmax is the majority class, ties to the lower class index, and ROC-AUC is 0.5), the mean of
  the training targets (regression).
- ``stratified``: draws each prediction from the training part's label distribution
  (scikit-learn's ``DummyClassifier(strategy="stratified")``): a class with the training class
  frequencies (the logits are the log of a one-hot vector smoothed by ``1e-3``), or, for
  regression, a training target drawn uniformly. The draws come from a generator seeded with the
  run seed and restart at every evaluation, so a run is reproducible.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cmkd.methods.base import Method
from cmkd.models.base import Output

SMOOTH = 1e-3


class TrivialPredictor(nn.Module):
    """A predictor fitted on the training labels alone; ``strategy`` is ``majority`` or ``stratified``."""

    def __init__(self, strategy: str, y_train: np.ndarray, task: str, n_classes: int, seed: int):
        super().__init__()
        if strategy not in ("majority", "stratified"):
            raise ValueError(f"unknown trivial strategy {strategy!r} (majority, stratified)")
        y_train = np.asarray(y_train)
        if len(y_train) == 0:
            raise ValueError("a trivial baseline needs a non-empty training part")
        self.strategy, self.task, self.n_classes, self.seed = strategy, task, int(n_classes), int(seed)
        if task == "regression":
            values = torch.as_tensor(y_train, dtype=torch.float32).reshape(-1)
            self.register_buffer("values", values)
            self.register_buffer("mean", values.mean().reshape(1))
        else:
            counts = np.bincount(y_train.astype(int), minlength=self.n_classes)[: self.n_classes]
            self.register_buffer("prior", torch.as_tensor(counts / counts.sum(), dtype=torch.float32))
        self._gen = None

    def train(self, mode: bool = True):
        self._gen = torch.Generator().manual_seed(self.seed)  # every evaluation restarts the draws
        return super().train(mode)

    def forward(self, batch: dict) -> Output:
        n = len(batch["y"])
        if self._gen is None:
            self._gen = torch.Generator().manual_seed(self.seed)
        if self.task == "regression":
            if self.strategy == "majority":
                out = self.mean.expand(n, 1).clone()
            else:
                out = self.values[torch.randint(len(self.values), (n,), generator=self._gen)].reshape(n, 1)
        elif self.strategy == "majority":
            out = torch.log(self.prior.clamp_min(1e-12)).expand(n, self.n_classes).clone()
        else:
            draw = torch.multinomial(self.prior, n, replacement=True, generator=self._gen) if n else torch.zeros(0, dtype=torch.long)
            onehot = torch.nn.functional.one_hot(draw, self.n_classes).float()
            out = torch.log(onehot * (1 - SMOOTH) + SMOOTH / self.n_classes)
        return Output(out, {"embedding": out})


class TrivialMethod(Method):
    """A baseline that sees no input; :meth:`fit_predictor` replaces the network, no epoch runs."""

    trivial = True
    strategy = ""

    @classmethod
    def fit_predictor(cls, y_train, task: str, n_classes: int, seed: int) -> TrivialPredictor:
        return TrivialPredictor(cls.strategy, y_train, task, n_classes, seed)

    def training_step(self, batch):
        raise RuntimeError(f"{type(self).__name__} is fitted by fit_predictor, not trained by steps")


class Majority(TrivialMethod):
    """Majority class of the training part (classification), training mean (regression)."""

    strategy = "majority"


class Stratified(TrivialMethod):
    """Predictions drawn from the training part's label distribution, seeded by the run seed."""

    strategy = "stratified"


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "majority": {"trivial": True, "description": "majority class of the training part / training mean"},
    "stratified": {"trivial": True, "description": "draws from the training label distribution (seeded)"},
}

METHODS = {"majority": Majority, "stratified": Stratified}
