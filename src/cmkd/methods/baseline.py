"""No distillation: the unimodal student alone, and the multimodal teacher (concatenation fusion).

Both minimise the task loss only (cross-entropy, or MSE for regression). They differ in the
modalities of the network the config gives them (``modalities: student`` / ``teacher``).
"""
from __future__ import annotations

from cmkd.methods.base import Method


class Baseline(Method):
    """Student (or fusion teacher) trained with cross-entropy alone: L = CE(y, f(x))."""

    def training_step(self, batch):
        out = self.student(batch)
        return out.logits, {"ce": self.task_loss(out.logits, batch["y"])}


class FusionTeacher(Baseline):
    """The multimodal teacher of the CDGKD setting without rebalancing (CDGKD Table 4, variant 1: α = 0):
    per-modality encoders, concatenated features, a shared classifier, cross-entropy."""


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "baseline": {"description": "student alone, cross-entropy, no distillation"},
    "fusion_teacher": {"description": "multimodal network, concatenation fusion + cross-entropy"},
}

METHODS = {"baseline": Baseline, "fusion_teacher": FusionTeacher}
