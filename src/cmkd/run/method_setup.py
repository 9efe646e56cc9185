"""The method of a run, set up as every run kind does it: the teachers from their checkpoints,
the method around student and teachers, the parts it is configured with (its declared feedback
part included), and the check that it left the validation part alone."""
from __future__ import annotations

import numpy as np
import torch

from cmkd.config import training_settings
from cmkd.data import selection
from cmkd.errors import ConfigError, RegistryError
from cmkd.methods import method_class
from cmkd.methods.base import RunContext
from cmkd.models.visual import without_pretrained
from cmkd.run.state import Built, RunData

#: the values of :attr:`cmkd.methods.base.Method.feedback_part`
FEEDBACK_PARTS = ("held_out", "train")


def method_parts(cls, parts: dict, held_out) -> dict:
    """The parts a method of class ``cls`` is configured with: ``train``, ``val`` (the selection
    trials), ``test``, and ``feedback`` only where the class declares a feedback part
    (:attr:`~cmkd.methods.base.Method.feedback_part`): ``"held_out"``, the split's hold-out of
    validation trials (``split.feedback_fraction``; None without one), or ``"train"``."""
    need = getattr(cls, "feedback_part", None)
    if need is None:
        return dict(parts)
    if need not in FEEDBACK_PARTS:
        raise RegistryError(f"{cls.__name__}.feedback_part: {need!r} is not one of {list(FEEDBACK_PARTS)}")
    return {**parts, "feedback": held_out if need == "held_out" else parts["train"]}


def build_teachers(checkpoints: dict) -> dict:
    """The teachers' networks from their checkpoints (their trained weights replace any initial ones)."""
    from cmkd.models.registry import build_model  # lazy: optional; imports timm only when a visual encoder is built

    teachers = {}
    for role, ck in checkpoints.items():
        t = build_model(without_pretrained(ck["spec"]))
        t.load_state_dict(ck["state_dict"])
        teachers[role] = t
    return teachers


def check_optimizer(training: dict) -> str:
    name = training_settings(training)["optimizer"]
    if name != "adam":
        raise ConfigError(f"training.optimizer: only 'adam' is supported, got {name!r}")
    return name


def attach_method(data: RunData, student, model_spec: dict, initial_weights, optimizer: bool = True) -> Built:
    """The method of ``data.spec`` around ``student`` and the teachers, its Adam optimiser (none
    with ``optimizer`` False: nothing to train), configured with its parts; a ConfigError if its
    ``configure`` changed the validation part (every row of a table selects on the same trials)."""
    spec, tr = data.spec, training_settings(data.spec["training"])
    teachers = build_teachers(data.teachers)
    cls = method_class(spec["class"])
    context = RunContext(seed=int(spec["seed"]), key=spec["method"], device=data.device)  # seed: the methods' own random choices
    method = cls(student, teachers, spec["params"], data.task, data.n_classes, context=context).to(data.device)
    method.dimension_spec = dict(spec["dimension_spec"])  # the dimension's config (threshold, tie) for methods that bin targets
    params = method.trainable_parameters()
    check_optimizer(tr)
    opt = torch.optim.Adam(params, lr=float(tr["lr"]), weight_decay=float(tr["weight_decay"])) if optimizer else None
    selection_index = np.asarray(data.parts["val"].index)
    method.configure(parts=data.parts, device=data.device, optimizer=opt)
    selected = selection.selection_record(data.parts["val"], data.prep["subject"], data.prep["trial"], data.feedback_fraction)
    if not np.array_equal(np.sort(np.asarray(data.parts["val"].index)), np.sort(selection_index)):
        raise ConfigError(f"{spec['method']}: method class '{spec['class']}' changed the validation part in configure(); "
                          "every row of a table must select on the same validation trials")
    return Built(method=method, optimizer=opt, model_spec=model_spec, initial_weights=initial_weights, selected=selected)
