"""The trivial baselines' run kind (majority class / training mean, class-distribution sampling:
``trivial: true`` in a method's registry entry): fitted on the training labels alone, they read no
input array, build no network, train no epoch and are never called degenerate (constant by
design). They share the load, score and write phases of every run (:mod:`cmkd.train`), so their
split, selection part and outputs are those of the networks beside them."""
from __future__ import annotations

import copy
import time

import torch

from cmkd.methods import method_class
from cmkd.run.method_setup import attach_method
from cmkd.run.state import Built, Fitted, RunData, RunKind


def inputs(spec: dict, teachers: dict) -> list:
    """A trivial baseline reads no input array."""
    return []


def build(data: RunData) -> Built:
    """The predictor fitted on the training part's labels, wrapped as the method; no optimiser."""
    spec = data.spec
    torch.manual_seed(int(spec["seed"]))
    student = method_class(spec["class"]).fit_predictor(data.parts["train"].y.numpy(), data.task, data.n_classes,
                                                        int(spec["seed"]))
    model_spec = {"trivial": spec["class"], "n_outputs": data.n_classes}
    return attach_method(data, student, model_spec, None, optimizer=False)


def fit(data: RunData, built: Built, out_dir) -> Fitted:
    """No epoch: the fitted predictor is the selected model (epoch 0)."""
    t_train0 = time.perf_counter()
    state = copy.deepcopy(built.method.student.state_dict())
    built.method.student.load_state_dict(state)
    return Fitted(history=[], best_state=state, best_epoch=0, best_score=None, t_train0=t_train0)


def degenerate(data: RunData, fitted: Fitted, y_test, out) -> None:
    return None


TRIVIAL = RunKind("trivial", inputs, build, fit, degenerate)
