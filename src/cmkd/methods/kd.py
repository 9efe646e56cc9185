"""Hinton et al. 2015, "Distilling the knowledge in a neural network" (arXiv:1503.02531)."""
from __future__ import annotations

import torch.nn.functional as F

from cmkd import losses
from cmkd.methods.base import Method


class KD(Method):
    """L = (1 − α) · CE(y, s) + α · T² · KL(softmax(t/T) ‖ softmax(s/T))  (Hinton et al. 2015, §2).

    The teacher is the checkpoint of role ``teacher`` (any modalities); the student sees only its
    own modalities. For regression the soft-target term is the MSE between the two outputs.
    """

    roles = ("teacher",)

    def training_step(self, batch):
        out = self.student(batch)
        t = self.teacher_outputs(batch)["teacher"]
        a = float(self.params["alpha"])
        terms = {"ce": (1 - a) * self.task_loss(out.logits, batch["y"])}
        if self.task == "regression":
            terms["kd"] = a * F.mse_loss(out.logits, t.logits)
        else:
            terms["kd"] = a * losses.kd(out.logits, t.logits, float(self.params["temperature"]))
        return out.logits, terms


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "kd": {"roles": ["teacher"],
           "description": "Hinton et al. 2015 knowledge distillation (TAKD: a chain of kd runs)",
           "extends": ["temperature"],
           "search": {"alpha": "mix", "temperature": "temperature"},
           "params": {"alpha": {"default": 0.5, "lo": 0.0, "hi": 1.0}}},
}

METHODS = {"kd": KD}
