"""MKD with dynamic feedback ("Multimodal Knowledge Distillation for Emotion Recognition", Zhang &
Lu, Brain Sciences 2025, 15(7):707): the EEG+EOG teacher (§3.1) and the EOG student (§3.2)
trained by the teaching phase (§3.3.1) alternating with the feedback phase (§3.3.2).

The paper numbers no equations; we cite them by section and by order in the section.

Teaching phase (§3.3.1, the objective ``L_S``, last display of the section)::

    L_S = λ1 · L_CE(y, f_S(x)) + λ2 · L_KL(f_T(x), f_S(x)) + λ3 · L_MSE(F_S, F_T)

- ``L_CE``: cross-entropy with the labels (first display of §3.3.1);
- ``L_KL = Σ_k y_k^T log(y_k^T / ŷ_k)``: teacher probabilities against the student's, batch
  mean (third display); with ``temperature`` T ≠ 1 the probabilities are softened and the term is
  scaled by T² (Hinton et al. 2015; the paper has no temperature: the default T = 1 is its
  formula exactly); implemented by :func:`cmkd.losses.kd`;
- ``L_MSE = 1/N Σ_n (f_n − f_n^T)²`` (second display): the mean squared error over all
  elements between the student's features F_S and the teacher's F_T. Which teacher feature is
  the target is the parameter ``feature_target`` (the section's text says "the heterogeneous
  features of the teacher model"; the abstract says the framework "distills the fused multimodal
  features into a simplified EOG-only model", and the ablation's Variation 2, §4.5, is
  "incorporating multimodal fusion features for distillation"):

  * ``imf`` (default): F_T is the teacher's fused multimodal feature, the IMF module's output
    ``X_output^IMF`` (§3.1.2, ``(B, tokens, n_modalities · d)``), and F_S the student's HDF output
    ``X_output^HDF`` (§3.2, ``(B, tokens, d)``, the student's counterpart of the IMF output)
    through a learned linear projection ``W: d → n_modalities · d`` (FitNets-style regressor,
    trained with the student, dropped after training; the paper gives the two widths but no
    mapping between them, so the projection is our choice): ``L_MSE = MSE(W X^HDF, X^IMF)``;
  * ``hetero`` (the earlier behaviour, kept for comparison): F_S are the student's HDF extractor
    outputs ``hetero_1..3`` (``(B, tokens, d)``), F_T the teacher's transformer stream outputs
    at the same three stream positions, the MSE averaged over the three positions (our choice:
    the paper does not say how the three features are combined). Which teacher stream:
    ``hetero_source`` = ``student`` (the teacher's stream of the student's modality, EOG: the
    counterpart with the student's structure and input), a modality name (e.g. ``eeg``), or
    ``mean`` (the mean of the streams); not a fused feature.

  λ1:λ2:λ3 = 1:1:1 (§4.3).

For regression, L_CE becomes the MSE with the targets and L_KL the MSE between the two outputs.

Feedback phase (§3.3.2), every ``feedback_every`` teaching steps, ``feedback_steps`` times:

1. a temporary student ``θ_ts = θ_s − α ∇_θs L_S(θ_s; θ_T)`` on the current training batch
   (first display of §3.3.2; one SGD step of size α = ``temp_lr``, default 1e-2: the paper gives
   no value; at the student's learning rate, 1e-4 in the paper grid, the student-driven part of
   the teacher's gradient was about 0.3 % of the teacher's own, so the feedback hardly differed
   from fine-tuning the teacher; ``temp_lr: null`` restores that), computed functionally
   (``torch.func.functional_call`` with ``create_graph=True``), so that ``θ_ts`` is a differentiable function of the teacher's
   parameters through the KL and MSE terms;
2. the teacher takes one Adam step (``teacher_lr``) on
   ``L_CE(y, f_s(x_V; θ_ts)) + λ_t · L_CE(y, f_t(x_V; θ_t))`` (second display; λ_t = 1, §4.3),
   on a batch ``x_V`` of VALIDATION data (as the paper prescribes), a second-order step through
   the temporary student as in meta-learning (MetaDistil, Zhou et al. 2022; student-friendly
   teachers).

How much of the teacher's update is the student's is measured, not assumed: every feedback step
records ``feedback_ratio = ‖g_s‖ / ‖g_t‖``, the L2 norm of the student-driven gradient part
``g_s = ∇θT L_CE(y, f_s(x_V; θ_ts))`` over that of the teacher's own part
``g_t = ∇θT λ_t L_CE(y, f_t(x_V; θ_T))`` (all trainable teacher parameters concatenated, before
Adam's step), and the run's ``history.csv`` has its per-epoch mean in the column
``feedback_ratio`` (:meth:`FeedbackSchedule.epoch_summary`). ``student_signal: false`` is the
control "teacher fine-tuned, no student feedback": the same teacher steps, on the same schedule
and held-out batches, with ``g_t`` alone (ratio 0), so that a table separates what the student's
signal adds from what fine-tuning the teacher on held-out data gives.

The student's parameters, gradients and BatchNorm statistics are untouched by the feedback
phase (its buffers are cloned for the functional calls; the gradients are taken with
``torch.autograd.grad``). The teacher runs in eval mode throughout (BatchNorm keeps the
statistics of its own training, dropout is off); it is updated only in the feedback phase.

Validation data and model selection (our protocol, not in the paper): the feedback trains the
teacher on validation data, so the student's model selection must use validation trials the
feedback never saw. The split option ``feedback_fraction`` (set on the MKD track, so that every
run of the track, with or without feedback, selects on the same trials; see
:mod:`cmkd.data.selection`) makes the training loop hold that share of the validation trials out;
:class:`MKDStudent` declares that it needs them (``feedback_part = "held_out"``), and the loop
gives them to it as ``parts["feedback"]``, which :meth:`MKDStudent.configure` takes for the
feedback phase (a method that declares no feedback part gets none). A
feedback run without that hold-out is refused (a ConfigError naming ``split.feedback_fraction``):
halving the validation part inside the method (the earlier protocol) made the feedback row select
on other validation trials than its neighbours. No method changes ``parts["val"]``; the training
loop checks it after ``configure``. The test part is never touched.
Trial identity: ``Part.groups`` (one trial key per segment) when the training loop provides it;
otherwise runs of consecutive segment indices (every loader writes the segments of a trial
consecutively, so a run is one or more whole trials).

The updated teacher is not saved: the run's result is the student's; the teacher's feedback
losses are kept in ``MKDStudent.feedback_log``.
"""
from __future__ import annotations

import math
import sys

import torch
import torch.nn.functional as F
from torch.func import functional_call

from cmkd import losses
from cmkd.data import selection
from cmkd.errors import ConfigError
from cmkd.methods.base import Method


# ----------------------------------------------------------------------------- the loss
def student_loss(student_logits, teacher_logits, y, student_feats, teacher_feats,
                 lambda1: float = 1.0, lambda2: float = 1.0, lambda3: float = 1.0,
                 temperature: float = 1.0, task: str = "classification") -> dict:
    """The terms of L_S (MKD §3.3.1): ``{"ce": λ1 L_CE, "kl": λ2 L_KL, "mse": λ3 L_MSE}``.

    ``student_feats`` / ``teacher_feats``: equal-length lists of equal-shape tensors (F_S, F_T);
    ``L_MSE`` is the mean over the pairs of the element-wise mean squared error. A term whose
    weight is 0 is left out. The teacher tensors are used as given (detach them to hold the
    teacher fixed, as in the teaching phase).
    """
    terms = {}
    if task == "regression":
        terms["ce"] = lambda1 * F.mse_loss(student_logits.squeeze(-1), y.float())
    else:
        terms["ce"] = lambda1 * F.cross_entropy(student_logits, y)
    if lambda2:
        if task == "regression":
            terms["kl"] = lambda2 * F.mse_loss(student_logits, teacher_logits)
        else:
            terms["kl"] = lambda2 * losses.kd(student_logits, teacher_logits, temperature)
    if lambda3:
        if len(student_feats) != len(teacher_feats) or not student_feats:
            raise ValueError(f"student_loss: {len(student_feats)} student features for {len(teacher_feats)} teacher features")
        for s, t in zip(student_feats, teacher_feats):
            if s.shape != t.shape:
                raise ValueError(f"student_loss: student feature {tuple(s.shape)} and teacher feature {tuple(t.shape)} differ in shape")
        terms["mse"] = lambda3 * torch.stack([F.mse_loss(s, t) for s, t in zip(student_feats, teacher_feats)]).mean()
    return terms


# ----------------------------------------------------------------------------- validation halves
# (defined in cmkd.data.selection: the training loop makes the same halves for every run of a track)
trial_groups, split_validation, subset = selection.trial_groups, selection.split_validation, selection.subset


# ----------------------------------------------------------------------------- the feedback step
def temporary_student(student, teacher, loss_terms, batch, lr):
    """``θ_ts = θ_s − lr ∇θs L(θ_s; θ_T)`` on ``batch``, ``L`` the sum of ``loss_terms(s_out, t_out, y)``:
    returns the temporary parameters (a differentiable function of the teacher's parameters), the
    cloned buffers to run them with, and ``L``."""
    params = {n: q for n, q in student.named_parameters() if q.requires_grad}
    buffers = {n: b.clone() for n, b in student.named_buffers()}  # the real statistics stay untouched
    s_out = functional_call(student, (params, buffers), (batch,))
    t_out = teacher(batch)
    loss = sum(loss_terms(s_out, t_out, batch["y"]).values())
    names = list(params)
    grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=True, allow_unused=True)
    temp = {n: (params[n] if g is None else params[n] - lr * g) for n, g in zip(names, grads)}
    return temp, buffers, loss


def _norm(grads) -> float:
    """The L2 norm of a list of gradients (None: no dependence, zero), all parameters concatenated."""
    sq = [float(g.detach().pow(2).sum()) for g in grads if g is not None]
    return math.sqrt(sum(sq))


def teacher_feedback(student, teacher, optimizer, task_loss, temp, buffers, val_batch, lambda_t):
    """One ``optimizer`` step of the teacher on ``val_batch`` through the temporary student ``temp``:
    ``min_θT L_CE(y, f_s(x_V; θ_ts)) + λ_t L_CE(y, f_t(x_V; θ_T))`` (MKD §3.3.2, second display).

    The teacher's gradient is the sum of two parts, taken separately so that their sizes are known:

    - the student-driven part ``g_s = ∇θT L_CE(y, f_s(x_V; θ_ts(θ_T)))`` (second order, through the
      temporary student's dependence on the teacher);
    - the teacher's own part ``g_t = ∇θT λ_t L_CE(y, f_t(x_V; θ_T))``.

    ``temp`` None is the control "teacher fine-tuned, no student feedback": the same step on the
    same batch with ``g_t`` alone (``g_s`` is not computed and counts as 0).

    Returns ``(l_student, l_teacher, norm_s, norm_t)``: the two CE terms (``l_student`` None
    without ``temp``) and the L2 norms ``‖g_s‖``, ``‖g_t‖`` over all the teacher's trainable
    parameters concatenated (before the optimiser step; Adam rescales the step per coordinate).
    """
    t_params = [q for q in teacher.parameters() if q.requires_grad]
    l_student, g_s = None, [None] * len(t_params)
    if temp is not None:
        s_val = functional_call(student, (temp, buffers), (val_batch,))
        l_student = task_loss(s_val.logits, val_batch["y"])
        g_s = list(torch.autograd.grad(l_student, t_params, allow_unused=True))
    t_val = teacher(val_batch)
    l_teacher = task_loss(t_val.logits, val_batch["y"])
    g_t = list(torch.autograd.grad(lambda_t * l_teacher, t_params, allow_unused=True))
    optimizer.zero_grad(set_to_none=True)
    for q, a, b in zip(t_params, g_s, g_t):
        g = a if b is None else (b if a is None else a + b)
        q.grad = None if g is None else g.detach()
    optimizer.step()
    return l_student, l_teacher, _norm(g_s), _norm(g_t)


# ----------------------------------------------------------------------------- methods
class FeedbackSchedule:
    """The feedback phase's schedule, shared by the MKD student (§3.3.2) and EmotionKD: after every
    ``feedback_every`` teaching steps, ``feedback_steps`` calls of the method's ``feedback_step``,
    each on the next batch of the feedback part (``self._fb_part``), drawn without replacement in
    the order of ``self._fb_gen`` and reshuffled when used up.

    :meth:`feedback_step` is shared too: the method gives its ``temporary_student(batch)``, the
    teacher's weight ``_feedback_lambda()``, the name its feedback record gives the teaching loss
    (``feedback_loss_key``) and the error raised before ``configure`` (``feedback_unconfigured``)."""

    feedback_loss_key = "l_s"
    feedback_unconfigured = "call configure(parts=..., device=..., optimizer=...) before the feedback phase"

    def _feedback_lambda(self):
        return self.params["lambda_t"]

    def feedback_step(self, batch, val_batch=None) -> dict:
        """One feedback iteration: temporary student, then one teacher step on held-out data (with
        ``student_signal: false``, the control: the teacher's step without the temporary student).
        The record's ``feedback_ratio`` is ``‖g_s‖ / ‖g_t‖`` of :func:`teacher_feedback` (NaN when
        ``‖g_t‖`` is 0, e.g. ``lambda_t: 0``)."""
        if self._teacher_opt is None:
            raise RuntimeError(self.feedback_unconfigured)
        if val_batch is None:
            val_batch = self._next_feedback_batch(len(batch["y"]))
        if self.params["student_signal"]:
            temp, buffers, loss = self.temporary_student(batch)
        else:
            temp, buffers, loss = None, None, None
        l_student, l_teacher, n_s, n_t = teacher_feedback(self.student, self.teacher, self._teacher_opt, self.task_loss,
                                                          temp, buffers, val_batch, self._feedback_lambda())
        ratio = n_s / n_t if n_t > 0 else float("nan")
        rec = {"step": self._steps, "fb_student_ce": float("nan") if l_student is None else float(l_student.detach()),
               "fb_teacher_ce": float(l_teacher.detach()),
               self.feedback_loss_key: float("nan") if loss is None else float(loss.detach()),
               "grad_norm_student": n_s, "grad_norm_teacher": n_t, "feedback_ratio": ratio}
        self.feedback_log.append(rec)
        if getattr(self, "_epoch_ratios", None) is None:
            self._epoch_ratios = []
        self._epoch_ratios.append(ratio)
        return rec

    _epoch_ratios: list | None = None

    def _check_feedback_signal(self) -> None:
        """The control without the student's signal needs the teacher's own term, or it never moves."""
        p = self.params
        if p["feedback"] and not p["student_signal"] and not p["lambda_t"]:
            raise ConfigError(f"{self.params_key}.student_signal: false (the fine-tuning control) with lambda_t: 0 "
                              "leaves the teacher's feedback step without a gradient; set lambda_t > 0")

    def on_epoch_start(self, epoch, generator):
        super().on_epoch_start(epoch, generator)
        self._epoch_ratios = []

    def epoch_summary(self) -> dict:
        """History columns of the epoch (see :meth:`cmkd.methods.base.Method.epoch_summary`): with
        ``feedback: true``, ``feedback_ratio``: the mean over the epoch's feedback steps of
        ``‖g_s‖ / ‖g_t‖``, the L2 norm of the student-driven part of the teacher's feedback
        gradient (through the temporary student) over the L2 norm of the teacher's own part
        (``λ_t ∇ L_CE`` of its own output), all trainable teacher parameters concatenated
        (:func:`teacher_feedback`); 0 for the fine-tuning control (``student_signal: false``); NaN
        for an epoch without a feedback step. Without feedback: no column."""
        if not self.params["feedback"]:
            return {}
        r = [v for v in (self._epoch_ratios or []) if not math.isnan(v)]
        self._epoch_ratios = []
        return {"feedback_ratio": sum(r) / len(r) if r else float("nan")}

    def after_step(self, batch):
        self._steps += 1
        if self.params["feedback"] and self._steps % self.params["feedback_every"] == 0:
            for _ in range(self.params["feedback_steps"]):
                self.feedback_step(batch)

    def _next_feedback_batch(self, size: int):
        part = self._fb_part
        if self._fb_perm is None or self._fb_pos >= len(self._fb_perm):
            self._fb_perm, self._fb_pos = torch.randperm(len(part), generator=self._fb_gen), 0
        idx = self._fb_perm[self._fb_pos:self._fb_pos + size]
        self._fb_pos += size
        if len(idx) < 2 and len(part) >= 2:  # BatchNorm (train mode) needs two or more
            self._fb_perm, self._fb_pos = None, 0
            return self._next_feedback_batch(size)
        return part.batch(idx, self._device if self._device is not None else part.y.device)


class MKDTeacher(Method):
    """The MKD multimodal teacher (§3.1; architecture ``mkd_teacher``) trained with the
    cross-entropy of its fused classifier: L = L_CE(y, f_T(x))."""

    def training_step(self, batch):
        out = self.student(batch)
        return out.logits, {"ce": self.task_loss(out.logits, batch["y"])}


class MKDStudent(FeedbackSchedule, Method):
    """The MKD EOG student (§3.2; architecture ``mkd_student``) trained with L_S (§3.3.1) and,
    with ``feedback: true``, the dynamic feedback phase (§3.3.2) that updates the teacher. See
    the module docstring for the equations and the validation protocol."""

    roles = ("teacher",)
    teachers_trainable = True
    feedback_part = "held_out"  # the split's hold-out of validation trials (split.feedback_fraction)
    feedback_unconfigured = "MKDStudent.feedback_step: call configure(parts=..., device=..., optimizer=...) first"
    FEATURE_TARGETS = ("imf", "hetero")

    def __init__(self, student, teachers, params, task, n_classes):
        super().__init__(student, teachers, params, task, n_classes)
        p = self.params
        t_mods = list(getattr(self.teacher, "modalities", []))
        src = p["hetero_source"]
        s_mods = list(getattr(student, "modalities", []))
        if src == "student":
            src = s_mods[0] if s_mods else None
        if p["lambda3"] and src != "mean" and src not in t_mods:
            raise ConfigError(f"{self.params_key}.hetero_source: {p['hetero_source']!r} is not a stream of the "
                              f"teacher (its modalities: {t_mods}); use 'student', 'mean' or one of them")
        self._check_feedback_signal()
        self._src = src
        self._positions = list(getattr(student, "config", {}).get("hdf_positions", [1, 2, 3]))
        if p["feature_target"] not in self.FEATURE_TARGETS:
            raise ConfigError(f"{self.params_key}.feature_target: must be one of {list(self.FEATURE_TARGETS)}, "
                              f"got {p['feature_target']!r}")
        self.proj = None
        if p["lambda3"] and p["feature_target"] == "imf":
            s_cfg, t_cfg = getattr(student, "config", {}), getattr(self.teacher, "config", {})
            if "tokens" not in s_cfg or "tokens" not in t_cfg:
                raise ConfigError(f"{self.params_key}.feature_target: 'imf' needs the mkd_student and mkd_teacher "
                                  "architectures (the student's HDF and the teacher's IMF outputs)")
            if s_cfg["tokens"] != t_cfg["tokens"]:
                raise ConfigError(f"{self.method_key}.model.tokens: the student has {s_cfg['tokens']} tokens, the "
                                  f"teacher {t_cfg['tokens']}; the fused-feature MSE compares them token by token")
            self.proj = torch.nn.Linear(student.width, self.teacher.width)  # W: X^HDF -> the width of X^IMF
        self.teacher.eval()
        if not p["feedback"]:  # variations 1 and 2: the teacher is fixed
            self.teacher.requires_grad_(False)
        self._steps = 0
        self._fb_part = None
        self._teacher_opt = None
        self._fb_perm, self._fb_pos = None, 0
        self.feedback_log: list[dict] = []

    @property
    def teacher(self):
        """The teacher (kept in the plain ``teachers`` dict: not a sub-module, not in the student's optimiser)."""
        return self.teachers["teacher"]

    def train(self, mode: bool = True):
        super().train(mode)
        for t in self.teachers.values():
            t.eval()
        return self

    # -- configuration: the feedback part (the split's hold-out) and the teacher's optimiser
    def configure(self, parts, device=None, optimizer=None):
        self._device = device
        if self.params["temp_lr"] is None:
            if optimizer is None:
                raise ConfigError(f"{self.params_key}.temp_lr: no student optimiser to take the default from; set it")
            self.params["temp_lr"] = float(optimizer.param_groups[0]["lr"])
        if not self.params["feedback"]:
            return
        if parts.get("feedback") is None:
            raise ConfigError(f"{self.params_key}.feedback: the feedback phase trains the teacher on held-out validation "
                              "trials (§3.3.2); set split.feedback_fraction (the track's or the method's split) so that "
                              "every run of the track selects on the same remaining validation trials")
        self._fb_part = parts["feedback"]  # the split's hold-out (split.feedback_fraction), shared by the track
        print(f"[mkd_student] feedback on the split's hold-out: {len(self._fb_part)} validation segments; model "
              f"selection on the other {len(parts['val'])}", file=sys.stderr, flush=True)
        self._teacher_opt = torch.optim.Adam([p for p in self.teacher.parameters() if p.requires_grad],
                                             lr=self.params["teacher_lr"])
        self._fb_gen = torch.Generator().manual_seed(int(self.context.seed if self.context.seed is not None else torch.initial_seed()) + 1)  # feedback batch order

    # -- L_S
    def _feature_pairs(self, s_out, t_out):
        if self.proj is not None:  # feature_target imf: [W X^HDF] against [X^IMF]
            return [self.proj(s_out.features["hdf"])], [t_out.features["imf"]]
        s_feats = [s_out.features[f"hetero_{k}"] for k in range(1, len(self._positions) + 1)]
        if self._src == "mean":
            t_feats = [t_out.features[f"hetero_{p}"] for p in self._positions]
        else:
            t_feats = [t_out.features[f"hetero_{p}_{self._src}"] for p in self._positions]
        for s, t in zip(s_feats, t_feats):
            if s.shape != t.shape:
                raise ConfigError(
                    f"{self.method_key}.model: the student's heterogeneous features {tuple(s.shape)} do not match the "
                    f"teacher's {tuple(t.shape)}; give the student the teacher's model settings (d_model, tokens, stream_layers)")
        return s_feats, t_feats

    def loss_terms(self, s_out, t_out, y) -> dict:
        p = self.params
        s_f, t_f = self._feature_pairs(s_out, t_out) if p["lambda3"] else ([], [])
        return student_loss(s_out.logits, t_out.logits, y, s_f, t_f, p["lambda1"], p["lambda2"], p["lambda3"],
                            p["temperature"], self.task)

    def training_step(self, batch):
        """Teaching phase (§3.3.1): L_S with the teacher fixed."""
        out = self.student(batch)
        with torch.no_grad():
            t = self.teacher(batch)
        return out.logits, self.loss_terms(out, t, batch["y"])

    # -- feedback phase (schedule and batches: FeedbackSchedule)
    def temporary_student(self, batch):
        """``θ_ts = θ_s − α ∇θs L_S(θ_s; θ_T)`` on ``batch`` (§3.3.2, first display): returns the
        temporary parameters (a differentiable function of the teacher's parameters), the cloned
        buffers to run them with, and L_S."""
        return temporary_student(self.student, self.teacher, self.loss_terms, batch, self.params["temp_lr"])



# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "mkd_teacher": {"description": "MKD dual-stream EEG+EOG teacher with IMF fusion"},
    "mkd_student": {"roles": ["teacher"], "description": "MKD EOG student with HDF, optional dynamic feedback",
                    "extends": ["feedback"],
                    "search": {"lambda1": "weight", "lambda2": "weight", "lambda3": "weight", "temperature": "temperature"},
                    "params": {"lambda1": {"default": 1.0, "lo": 0.0}, "lambda2": {"default": 1.0, "lo": 0.0}, "lambda3": {"default": 1.0, "lo": 0.0},
                               "temperature": {"default": 1.0, "lo": 0.0, "lo_open": True},
                               "hetero_source": {"default": "student", "kind": "str"},
                               "feature_target": {"default": "imf", "kind": "choice", "choices": ["imf", "hetero"]}}},
}

METHODS = {"mkd_teacher": MKDTeacher, "mkd_student": MKDStudent}
