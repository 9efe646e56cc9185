"""EmotionKD student (Liu, Jia & Wang 2023, "EmotionKD: a cross-modal knowledge distillation
framework for emotion recognition based on physiological signals", ACM MM 2023, pp. 6122-6131):
the multi-level distillation loss (teaching phase) and the adaptive feedback phase, in which the
teacher is updated from the student during distillation."""
from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmkd.errors import ConfigError
from cmkd.methods.base import Method
from cmkd.methods.mkd_feedback import FeedbackSchedule, temporary_student


class EmotionKD(FeedbackSchedule, Method):
    """The unimodal student's multi-level KD loss of EmotionKD (the paper's distillation of the
    teacher's soft labels and of its fused IMF feature; the released ``MLKDLoss``):

    ``L = e1 * CE(y, p_s) + e2 * KL(p_t || p_s) + e3 * MSE(f_t, W f_s)``

    - ``p_s``, ``p_t``: softmax of student and teacher logits at ``temperature`` (1: the released
      code applies KL to the plain softmax outputs; at ``T != 1`` the KL is scaled by ``T^2``,
      :func:`cmkd.losses.kd`);
    - ``f_t``: the teacher's interactivity feature, the vector its classifier reads
      (``features["fused"]``: the IMF output of :class:`cmkd.models.emotionkd_teacher.EmotionKDTeacherNet`,
      the concatenation for the CDGKD teacher); ``f_s``: the student's classifier input
      (``features["fused"]``);
    - ``W``: a linear map from the student's to the teacher's feature size, trained with the
      student. The released code has equal sizes by construction (no ``W``); ours differ
      (visual encoder vs fused teacher), so a regressor is needed (documented deviation);
    - ``MSE``: mean over elements (Keras ``MeanSquaredError``); ``KL``: batch mean of the
      per-sample sum over classes (Keras ``KLDivergence``).
    - Defaults ``e1 = 1, e2 = 0.1, e3 = 1``: the released "final training" setting.

    Adaptive feedback (``feedback: true``, the default): EmotionKD's third module, an "adaptive
    feedback knowledge distillation" in which "the teacher model is able to adjust the output
    feature during the knowledge distillation" (the EmotionKD project page). The EmotionKD paper's
    own equations are not in the material this benchmark could read; the MKD paper (seed 004,
    §3.3.2) writes a feedback phase of the same design (teaching phase, then a teacher adjusted
    through a temporary copy of the student, IMF features) in equations, and we implement that
    description, every ``feedback_every`` teaching steps:

    1. a temporary student ``theta_ts = theta_s - alpha * grad_theta_s L(theta_s; theta_T)`` on the
       current training batch (one SGD step, ``alpha`` = ``temp_lr``, default 1e-2, ``null``: the
       student optimiser's learning rate; see :mod:`cmkd.methods.mkd_feedback`; ``L`` the teaching loss above, ``W`` held at its current value),
       computed functionally with ``create_graph=True`` so that ``theta_ts`` depends on the
       teacher's parameters through the KL and feature terms;
    2. one Adam step of the teacher (``teacher_lr``, 1e-4) on
       ``CE(y, f_s(x_V; theta_ts)) + lambda_t * CE(y, f_t(x_V; theta_T))`` (``lambda_t`` = 1) on a
       batch ``x_V`` of the feedback's data (below; §3.3.2 prescribes validation data), a second-order step
       through the temporary student (as meta-learning KD, MetaDistil).

    Data of the feedback (a choice the description leaves open): batches of the TRAINING part,
    drawn in their own seeded order. The MKD description feeds the teacher validation data; here
    the validation part is left whole, so that EmotionKD selects its checkpoint on the same
    validation trials as every other row of its table (earlier, half of the validation trials fed
    the feedback and the other half selected, a smaller selection part than its neighbours').
    ``feedback_ratio`` (per feedback step in ``feedback_log``, per epoch in ``history.csv``) and the
    control ``student_signal: false`` are those of :class:`cmkd.methods.mkd_feedback.FeedbackSchedule`.
    The student's parameters, gradients and BatchNorm statistics are untouched by the feedback
    phase; the teacher runs in eval mode (BatchNorm statistics of its own training, no dropout) and
    changes only in the feedback phase; the updated teacher is not saved (``feedback_log`` keeps
    the feedback losses). ``feedback: false`` is the offline variant (frozen teacher, the whole
    validation part for selection). Classification only.
    """

    roles = ("teacher",)
    teachers_trainable = True  # with feedback: false the teacher is frozen in __init__
    feedback_part = "train"  # the feedback's data: the training part (the class docstring), given by the loop
    feedback_loss_key = "teaching_loss"
    feedback_unconfigured = "emotionkd: call configure(parts=..., device=..., optimizer=...) before the feedback phase"

    def __init__(self, student, teachers, params, task, n_classes):
        super().__init__(student, teachers, params, task, n_classes)
        where = self.params_key
        if task != "classification":
            raise ConfigError(f"{self.method_key}: soft-label distillation needs a classification dimension, got {task!r}")
        if "teacher" not in self.teachers:
            raise ConfigError(f"{self.method_key}.requires: needs a 'teacher' checkpoint")
        p = self.params
        if not isinstance(p["feedback"], bool):
            raise ConfigError(f"{where}.feedback: must be true or false, got {p['feedback']!r}")
        for k in ("feedback_every", "feedback_steps"):
            if isinstance(p[k], bool) or not isinstance(p[k], int) or p[k] < 1:
                raise ConfigError(f"{where}.{k}: must be a positive integer, got {p[k]!r}")
        for k, lo_open in (("teacher_lr", True), ("lambda_t", False), ("temp_lr", True)):
            v = p[k]
            if v is None and k == "temp_lr":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (lo_open and v == 0):
                raise ConfigError(f"{where}.{k}: must be a {'positive' if lo_open else 'non-negative'} number, got {v!r}")
        self._check_feedback_signal()
        self.teacher.eval()
        if not p["feedback"]:  # the offline variant: a frozen teacher (its outputs may be cached)
            self.teacher.requires_grad_(False)
            self.teachers_trainable = False
        self.regressor: nn.Module | None = None
        self._steps = 0
        self._fb_part = None
        self._teacher_opt = None
        self._fb_perm, self._fb_pos = None, 0
        self._device = None
        self.feedback_log: list[dict] = []

    @property
    def teacher(self) -> nn.Module:
        return self.teachers["teacher"]

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # updated by the feedback phase only, always in eval mode
        return self

    def configure(self, parts=None, device=None, optimizer=None, **_):
        """Build the feature regressor ``W`` from one sample's feature sizes and hand its
        parameters to the optimiser (it is created after the optimiser); with feedback, take
        ``parts["feedback"]`` (the training part: :attr:`feedback_part`, see the class docstring;
        ``parts["val"]`` is not touched) as the feedback's data and build the teacher's optimiser."""
        if parts is None:
            return
        self._device = device
        idx = torch.arange(min(2, len(parts["train"])))
        batch = parts["train"].batch(idx, device or "cpu")
        self.build_regressor(batch, device)
        if optimizer is not None:
            optimizer.add_param_group({"params": list(self.regressor.parameters())})
        p = self.params
        if not p["feedback"]:
            return
        if p["temp_lr"] is None:
            if optimizer is None:
                raise ConfigError(f"{self.params_key}.temp_lr: no student optimiser to take the default from; set it")
            p["temp_lr"] = float(optimizer.param_groups[0]["lr"])
        # the feedback's data (feedback_part "train": the training part, given by the training loop as
        # parts["feedback"]); the validation part stays whole for model selection
        self._fb_part = parts["feedback"]
        t_params = [q for q in self.teacher.parameters() if q.requires_grad]
        if not t_params:
            raise ConfigError(f"{self.params_key}.feedback: the teacher has no trainable parameters to update")
        self._teacher_opt = torch.optim.Adam(t_params, lr=float(p["teacher_lr"]))
        self._fb_gen = torch.Generator().manual_seed(int(self.context.seed or 0) + 2)

    @torch.no_grad()
    def build_regressor(self, batch, device=None) -> None:
        was = self.student.training
        self.student.eval()
        ds = self.student(batch).features["fused"].shape[1]
        self.student.train(was)
        dt = self.teacher(batch).features["fused"].shape[1]
        self.regressor = nn.Linear(ds, dt)
        if device is not None:
            self.regressor.to(device)

    def loss_terms(self, s_out, t_out, y) -> dict:
        """The teaching loss: ``{"ce": e1 CE, "kd": e2 T^2 KL(p_t || p_s), "feat": e3 MSE(f_t, W f_s)}``."""
        p = self.params
        temp = float(p["temperature"])
        log_ps = F.log_softmax(s_out.logits / temp, dim=1)
        pt = F.softmax(t_out.logits / temp, dim=1)
        kl = F.kl_div(log_ps, pt, reduction="sum") / s_out.logits.shape[0] * temp * temp
        feat = F.mse_loss(self.regressor(s_out.features["fused"]), t_out.features["fused"])
        return {"ce": float(p["e1"]) * self.task_loss(s_out.logits, y),
                "kd": float(p["e2"]) * kl, "feat": float(p["e3"]) * feat}

    def training_step(self, batch):
        """Teaching phase: the student learns with the teacher fixed."""
        out = self.student(batch)
        t = self.teacher_outputs(batch)["teacher"]
        if self.regressor is None:
            self.build_regressor(batch, out.logits.device)
        return out.logits, self.loss_terms(out, t, batch["y"])

    # ---------------------------------------------------------------- the feedback phase (FeedbackSchedule)
    def temporary_student(self, batch):
        """``theta_ts = theta_s - alpha grad L(theta_s; theta_T)`` on ``batch``, a differentiable
        function of the teacher's parameters; returns (parameters, cloned buffers, L)."""
        return temporary_student(self.student, self.teacher, self.loss_terms, batch, float(self.params["temp_lr"]))

    def _feedback_lambda(self):
        return float(self.params["lambda_t"])


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "emotionkd": {"roles": ["teacher"], "description": "EmotionKD (Liu et al. 2023) student", "extends": ["feedback"],
                  # e2 around its 0.1, the others around 1 (one decade each side)
                  "search": {"e1": "weight", "e2": {"lo": 0.01, "hi": 1.0, "log": True}, "e3": "weight",
                             "temperature": "temperature"},
                  "params": {"e1": {"default": 1.0, "lo": 0.0},
                             "e2": {"default": 0.1, "lo": 0.0},
                             "e3": {"default": 1.0, "lo": 0.0},
                             "temperature": {"default": 1.0, "lo": 0.0, "lo_open": True}}},
}

METHODS = {"emotionkd": EmotionKD}
