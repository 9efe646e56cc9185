"""What the classic KD zoo methods (FitNets, NST, SP, RKD, PKT, CRD, DGKD) share.

- :class:`ZooMethod`: RepDistiller's objective ``gamma * CE + alpha * KD + beta * L_feature``
  (``train_student.py``: ``-r`` gamma, ``-a`` alpha, ``-b`` beta); the README commands of
  RepDistiller run every feature method with ``gamma = 1``, ``alpha = 0`` and a method-specific
  beta (FitNets 100, NST 50, SP 3000, RKD 1, PKT 30000, CRD 0.8): the ``repdistiller`` preset of
  each method's ``weights`` parameter; the default preset, ``paper``, is each method's own paper
  (the values and their sources: each module's ``REGISTER`` and docs/kd_weights.md).
  For regression the CE is the mean squared error and the KD term the MSE between the outputs
  (as :class:`cmkd.methods.kd.KD`).
- the parameter checks (:mod:`cmkd.params`; declared in each module's ``REGISTER``, the shared groups
  in :mod:`cmkd.methods.params_common`);
- :func:`feature`: a named feature of a model output, with an error naming the config key;
- :func:`match_spatial`: the adaptation that lets feature-map losses compare maps of different
  spatial size and rank (a face map ``(B, C, h, w)`` against an EEG map ``(B, C', L)``).
"""
from __future__ import annotations


import torch
import torch.nn.functional as F

from cmkd import losses
from cmkd.errors import ConfigError
from cmkd.methods.base import Method
from cmkd.params import choice, integer, number  # noqa: F401  (the shared value checks)


# ----------------------------------------------------------------------------- parameter checks
def where(method: Method, key: str) -> str:
    """The config key of one of ``method``'s parameters: ``methods.<key>.params.<p>`` with the run's
    config key (:attr:`Method.params_key`)."""
    return f"{method.params_key}.{key}"


def feature(out, name: str, key: str, who: str) -> torch.Tensor:
    """``out.features[name]``; a missing name is a ConfigError naming ``key``."""
    feats = out.features
    if name not in feats:
        raise ConfigError(f"{key}: the {who} network outputs no feature {name!r} "
                          f"(it has: {sorted(feats)})")
    return feats[name]


# ----------------------------------------------------------------------------- spatial matching
def _as_map(x: torch.Tensor) -> torch.Tensor:
    """(B, C) -> (B, C, 1); (B, C, ...) unchanged."""
    if x.dim() < 2:
        raise ValueError(f"feature map must be (B, C, ...), got {tuple(x.shape)}")
    return x.unsqueeze(-1) if x.dim() == 2 else x


def _pool(x: torch.Tensor, size: tuple) -> torch.Tensor:
    if tuple(x.shape[2:]) == tuple(size):
        return x
    fn = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[len(size)]
    return fn(x, size)


def match_spatial(student: torch.Tensor, teacher: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bring two feature maps ``(B, C_s, *S_s)``, ``(B, C_t, *S_t)`` to a common spatial size.

    Documented adaptation (the papers compare maps of one architecture family, of equal size):

    - a vector ``(B, C)`` is a map with one position ``(B, C, 1)``;
    - same spatial rank (1 to 3): both maps are adaptive-average-pooled to the element-wise
      smaller size (RepDistiller's NST pools the larger map to the smaller one the same way);
    - different ranks (a face map ``(h, w)`` against an EEG map ``(L,)``): the spatial axes are
      flattened in row-major order to one axis of ``prod(S)`` positions and both sequences are
      adaptive-average-pooled to the shorter length. Pooling only averages neighbouring
      positions, so each output position still summarises one region of its own input.

    Channels are left as they are. Returns the two pooled maps, spatial shapes equal.
    """
    s, t = _as_map(student), _as_map(teacher)
    if s.shape[0] != t.shape[0]:
        raise ValueError(f"batch sizes differ: {s.shape[0]} vs {t.shape[0]}")
    ss, ts = tuple(s.shape[2:]), tuple(t.shape[2:])
    if len(ss) == len(ts) and len(ss) <= 3:
        size = tuple(min(a, b) for a, b in zip(ss, ts))
        return _pool(s, size), _pool(t, size)
    s = s.reshape(s.shape[0], s.shape[1], -1)
    t = t.reshape(t.shape[0], t.shape[1], -1)
    n = min(s.shape[2], t.shape[2])
    return _pool(s, (n,)), _pool(t, (n,))


# ----------------------------------------------------------------------------- the common objective

@torch.no_grad()
def student_probe(student, parts, device, name: str) -> tuple:
    """The student's outputs on (at most) two training samples, in eval mode and without gradient,
    and that batch: what a method sizes its own modules from (the real feature shapes)."""
    if parts is None or "train" not in parts or len(parts["train"]) < 1:
        raise ValueError(f"{name}: configure() needs parts with a non-empty 'train' part")
    batch = parts["train"].batch(torch.arange(min(2, len(parts["train"]))), device)
    was = student.training
    student.eval()
    try:
        return student(batch), batch
    finally:
        student.train(was)

class ZooMethod(Method):
    """``L = gamma * task_loss + alpha * KD(T) + beta * L_feature`` (RepDistiller's objective).

    Subclasses set ``name`` (the registry name; parameters incl. ``beta`` in its entry) and implement
    :meth:`feature_terms` returning ``{term: tensor}`` already multiplied by beta. The teacher is
    the checkpoint of role ``teacher``; the student sees only its own modalities.
    """

    name = "zoo"
    roles = ("teacher",)
    def _check_params(self) -> None:
        super()._check_params()
        if "teacher" not in self.teachers:
            raise ConfigError(f"{self.method_key}.requires: needs a 'teacher' checkpoint "
                              f"(got roles {sorted(self.teachers)})")

    def base_terms(self, s_out, t_out, y) -> dict:
        """``{"ce": gamma * task_loss}`` plus ``{"kd": alpha * KD}`` when ``alpha > 0``."""
        p = self.params
        terms = {"ce": p["gamma"] * self.task_loss(s_out.logits, y)}
        if p["alpha"] > 0:
            if self.task == "regression":
                terms["kd"] = p["alpha"] * F.mse_loss(s_out.logits, t_out.logits)
            else:
                terms["kd"] = p["alpha"] * losses.kd(s_out.logits, t_out.logits, p["temperature"])
        return terms

    def feature_terms(self, batch, s_out, t_out) -> dict:
        raise NotImplementedError

    def training_step(self, batch):
        s_out = self.student(batch)
        t_out = self.teacher_outputs(batch)["teacher"]
        terms = self.base_terms(s_out, t_out, batch["y"])
        terms.update(self.feature_terms(batch, s_out, t_out))
        return s_out.logits, terms

    # ---------------------------------------------------------------- probing shapes
    @torch.no_grad()
    def probe(self, parts, device) -> tuple:
        """Student and teacher outputs on two training samples (eval mode, no gradient), to size
        the method's own modules (regressor, embedding heads) from the real feature shapes."""
        s_out, batch = student_probe(self.student, parts, device, self.name)
        return s_out, self.teacher_outputs(batch)["teacher"]

    @staticmethod
    def add_to_optimizer(optimizer, module) -> None:
        """Hand a module built in ``configure`` (after the optimiser) to the optimiser."""
        params = [p for p in module.parameters() if p.requires_grad]
        if optimizer is not None and params:
            optimizer.add_param_group({"params": params})


class RelationalMethod(ZooMethod):
    """Shared by SP, RKD and PKT: a loss on the (flattened) ``feature`` of student and teacher,
    weighted by ``beta``; the term is named after the method, the loss is its :meth:`relation_loss`."""

    def relation_loss(self, s, t):
        """The method's loss of the flattened student features ``s`` and teacher features ``t``."""
        raise NotImplementedError

    def feature_terms(self, batch, s_out, t_out):
        s, t = self.pair(s_out, t_out)
        return {self.name: self.params["beta"] * self.relation_loss(s, t)}

    def pair(self, s_out, t_out):
        p = self.params
        s = feature(s_out, p["feature"], where(self, "feature"), "student")
        t = feature(t_out, p["teacher_feature"] or p["feature"], where(self, "teacher_feature"), "teacher")
        return s.reshape(s.shape[0], -1), t.reshape(t.shape[0], -1).detach()
