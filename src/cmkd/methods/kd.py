"""Hinton et al. 2015, "Distilling the knowledge in a neural network" (arXiv:1503.02531)."""
from __future__ import annotations

import torch.nn.functional as F

from cmkd import losses
from cmkd.methods.base import Method


class KD(Method):
    """L = (1 − α) · CE(y, s) + α · T² · KL(softmax(t/T) ‖ softmax(s/T))  (Hinton et al. 2015, §2).

    The teacher is the checkpoint of role ``teacher`` (any modalities); the student sees only its
    own modalities. For regression the soft-target term is the MSE between the two outputs.

    Weights (``weights`` preset; the values in this module's ``REGISTER``, their table and sources
    in docs/kd_weights.md): ``paper`` (default) T = 20, Hinton et al. 2015 §3 (MNIST), and
    alpha = 2/3: §4.1 puts "a relative weight of 0.5 on the cross-entropy for the hard targets"
    against the T²-scaled soft term (weight 1), i.e. CE : KD = 0.5 : 1, which the convex form above
    writes as alpha = 1 / 1.5 (§2: with the T² scaling the relative weight does not depend on T);
    ``repdistiller`` alpha 0.9, T 4 (RepDistiller ``scripts/run_cifar_distill.sh`` ``-r 0.1 -a 0.9``,
    ``train_student.py`` ``--kd_T`` default 4); ``previous`` alpha 0.5, T 4 (the values run at 912213b).
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
           "search": {"alpha": "mix", "temperature": "temperature"},
           "params": {"temperature": {"default": 20.0, "lo": 0.0, "lo_open": True},
                      "alpha": {"default": 0.6666666666666666, "lo": 0.0, "hi": 1.0},
                      "weights": {"default": "paper", "kind": "choice", "choices": ["paper", "repdistiller", "previous"],
                                 "doc": "preset of the loss weights: the method's paper, RepDistiller's CIFAR-100 commands, or the values run at 912213b"}},
           # paper: Hinton et al. 2015, T = 20 (§3, MNIST: the 800-unit net distilled at a temperature of 20) and
           # alpha = 2/3 (§4.1: "a relative weight of 0.5 on the cross-entropy for the hard targets", the soft term at
           # weight 1 and scaled by T^2 (§2), so CE : KD = 0.5 : 1 = (1 - alpha) : alpha); repdistiller: RepDistiller
           # scripts/run_cifar_distill.sh (-r 0.1 -a 0.9) and train_student.py (--kd_T default 4); sources in docs/kd_weights.md
           "presets": {"paper": {"alpha": 0.6666666666666666, "temperature": 20.0},
                       "repdistiller": {"alpha": 0.9, "temperature": 4.0},
                       "previous": {"alpha": 0.5, "temperature": 4.0}}},
}

METHODS = {"kd": KD}
