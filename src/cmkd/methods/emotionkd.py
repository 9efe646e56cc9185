"""EmotionKD student (Liu, Jia & Wang 2023, "EmotionKD: a cross-modal knowledge distillation
framework for emotion recognition based on physiological signals", ACM MM 2023, pp. 6122-6131)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cmkd.errors import ConfigError
from cmkd.methods.base import Method


class EmotionKD(Method):
    """The unimodal student's multi-level KD loss of EmotionKD (the paper's distillation of the
    teacher's soft labels and of its fused IMF feature; the released ``MLKDLoss``):

    ``L = e1 * CE(y, p_s) + e2 * KL(p_t || p_s) + e3 * MSE(f_t, W f_s)``

    - ``p_s``, ``p_t``: softmax of student and teacher logits at ``temperature`` (1: the released
      code applies KL to the plain softmax outputs; at ``T != 1`` the KL is scaled by ``T^2``,
      :func:`cmkd.losses.kd`);
    - ``f_t``: the teacher's interactivity feature, the vector its classifier reads
      (``features["fused"]``: the IMF output of :class:`cmkd.models.teacher_baselines.EmotionKDTeacherNet`,
      the concatenation for the CDGKD teacher); ``f_s``: the student's classifier input
      (``features["fused"]``);
    - ``W``: a linear map from the student's to the teacher's feature size, trained with the
      student. The released code has equal sizes by construction (no ``W``); ours differ
      (visual encoder vs fused teacher), so a regressor is needed (documented deviation);
    - ``MSE``: mean over elements (Keras ``MeanSquaredError``); ``KL``: batch mean of the
      per-sample sum over classes (Keras ``KLDivergence``).
    - Defaults ``e1 = 1, e2 = 0.1, e3 = 1``: the released "final training" setting.

    Not implemented (left open): EmotionKD's adaptive feedback, in which the teacher is updated
    during distillation from the student's performance. The teacher here is the frozen checkpoint
    of role ``teacher`` (as every offline baseline of the benchmark); the EEG+EOG feedback
    mechanism lives in :mod:`cmkd.methods.mkd_feedback`. Classification only.
    """

    roles = ("teacher",)

    def __init__(self, student, teachers, params, task, n_classes):
        super().__init__(student, teachers, params, task, n_classes)
        if task != "classification":
            raise ConfigError(f"methods.<emotionkd>: soft-label distillation needs a classification dimension, got {task!r}")
        if "teacher" not in self.teachers:
            raise ConfigError("methods.<emotionkd>.requires: needs a 'teacher' checkpoint")
        self.regressor: nn.Module | None = None

    def configure(self, parts=None, device=None, optimizer=None):
        """Build the feature regressor ``W`` from one sample's feature sizes and hand its
        parameters to the optimiser (it is created after the optimiser)."""
        if parts is None:
            return
        idx = torch.arange(min(2, len(parts["train"])))
        batch = parts["train"].batch(idx, device or "cpu")
        self.build_regressor(batch, device)
        if optimizer is not None:
            optimizer.add_param_group({"params": list(self.regressor.parameters())})

    @torch.no_grad()
    def build_regressor(self, batch, device=None) -> None:
        was = self.student.training
        self.student.eval()
        ds = self.student(batch).features["fused"].shape[1]
        self.student.train(was)
        dt = self.teachers["teacher"](batch).features["fused"].shape[1]
        self.regressor = nn.Linear(ds, dt)
        if device is not None:
            self.regressor.to(device)

    def training_step(self, batch):
        out = self.student(batch)
        t = self.teacher_outputs(batch)["teacher"]
        if self.regressor is None:
            self.build_regressor(batch, out.logits.device)
        p = self.params
        temp = float(p["temperature"])
        log_ps = F.log_softmax(out.logits / temp, dim=1)
        pt = F.softmax(t.logits / temp, dim=1)
        kl = F.kl_div(log_ps, pt, reduction="sum") / out.logits.shape[0] * temp * temp
        feat = F.mse_loss(self.regressor(out.features["fused"]), t.features["fused"])
        terms = {"ce": float(p["e1"]) * self.task_loss(out.logits, batch["y"]),
                 "kd": float(p["e2"]) * kl, "feat": float(p["e3"]) * feat}
        return out.logits, terms


METHODS = {"emotionkd": EmotionKD}
