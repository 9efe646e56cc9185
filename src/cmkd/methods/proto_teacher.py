"""CDGKD §3.1: the prototype-based modality rebalancing teacher (eqs. 1-6).

The network is the fusion teacher (:class:`cmkd.models.fusion.MultiModalNet` over face + EEG:
per-modality features ``features["face"]``, ``features["eeg"]``, concatenation, classifier);
only the loss differs from :class:`cmkd.methods.baseline.FusionTeacher`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cmkd import losses
from cmkd.errors import ConfigError
from cmkd.methods.base import Method

UPDATES = ("epoch", "ema")


class ProtoTeacher(Method):
    """Multimodal teacher trained with the prototype-based modality rebalancing strategy,
    CDGKD eq. (5):

    ``L_teacher = (1 - alpha) * L_CE + alpha * (lambda_v * L_proto^v + lambda_e * L_proto^e)``

    per batch, with

    - ``c_k^m`` class prototypes of modality m (eq. 1, :func:`cmkd.losses.class_prototypes`);
    - ``p_i^m`` softmax over ``-||z_i^m - c_k^m||^2`` (eq. 2, :func:`cmkd.losses.prototype_probs`);
    - ``L_proto^m`` the mean ``-log p_i^m`` at the true class (eq. 3, :func:`cmkd.losses.prototype_loss`);
    - ``r_t^m = sum_{i in B_t} p_i^m`` over the batch (eq. 4, :func:`cmkd.losses.convergence_rate`);
    - ``lambda_v, lambda_e`` from the clipped ratio rule of eq. (6)
      (:func:`cmkd.losses.rebalance_weights`): the faster modality gets 0, the slower one
      ``clip(r_fast / r_slow - 1, 0, 1)``. The lambdas are plain numbers (no gradient).

    Terms returned to the loop (they sum to eq. 5): ``ce = (1 - alpha) L_CE``,
    ``proto_v = alpha lambda_v L_proto^v``, ``proto_e = alpha lambda_e L_proto^e``.
    Diagnostics (logged, not optimised; ``method.diagnostics``): ``lambda_v``, ``lambda_e``,
    ``r_v``, ``r_e`` (the batch sums of eq. 4), ``proto_loss_v``, ``proto_loss_e`` (unweighted).

    Prototype maintenance. Eq. (1) averages the features of *all* samples of a class; the
    features change while training, so the prototypes must be re-estimated. ``prototype_update``:

    - ``"epoch"`` (default; as PMR, Fan et al. 2023, which CDGKD's strategy follows): at the start
      of every epoch, eq. (1) over the whole training part with the current encoders in eval mode
      (no dropout, BatchNorm running statistics), without gradient; fixed during the epoch.
    - ``"ema"``: the same full-pass estimate at the start of the first epoch, then after every
      step ``c_k <- m c_k + (1 - m) mean_{i in B, y_i = k} z_i`` for the classes present in the
      batch (``momentum`` m, default 0.9), with the batch's training-mode features, detached.

    Prototypes are constants in the loss (gradient flows into ``z_i`` only), which is what makes
    eq. (3) pull each feature towards its class centre. With ``alpha = 0`` (CDGKD Table 4, variant
    1) the loss is the plain cross-entropy; the rates and lambdas are still computed and logged.

    Params: ``alpha`` in [0, 1] (paper 0.5), ``prototype_update`` (``epoch`` | ``ema``),
    ``momentum`` in [0, 1), ``visual``/``eeg`` (the modality names, ``face``/``eeg``),
    ``eval_batch_size`` (batch of the prototype pass, 256). Classification only.
    """

    def __init__(self, student, teachers, params, task, n_classes):
        super().__init__(student, teachers, params, task, n_classes)
        p = self.params
        if task != "classification":
            raise ConfigError(f"{self.method_key}: prototypes need class labels; the dimension's task must be "
                              f"'classification', got {task!r}")
        mods = getattr(student, "modalities", None)
        for key in ("visual", "eeg"):
            if mods is not None and p[key] not in mods:
                raise ConfigError(f"{self.params_key}.{key}: modality {p[key]!r} is not one of the network's modalities {list(mods)} "
                                  "(use modalities: teacher)")
        self.prototypes: dict[str, torch.Tensor] = {}
        self.diagnostics: dict[str, float] = {}
        self._train_part = None
        self._device = None

    # -------------------------------------------------------------- prototype maintenance
    def configure(self, parts=None, device=None, optimizer=None):
        self._train_part = parts["train"] if parts is not None else None
        self._device = device

    @torch.no_grad()
    def compute_prototypes(self, part) -> dict[str, torch.Tensor]:
        """Eq. (1) over every sample of ``part`` with the current encoders in eval mode."""
        was = self.student.training
        self.student.eval()
        mods = (self.params["visual"], self.params["eeg"])
        sums = {m: None for m in mods}
        counts = torch.zeros(self.n_classes)
        bs = int(self.params["eval_batch_size"])
        device = self._device or next(self.student.parameters()).device
        for s in range(0, len(part), bs):
            idx = torch.arange(s, min(s + bs, len(part)))
            batch = part.batch(idx, device)
            out = self.student(batch)
            onehot = F.one_hot(batch["y"].long(), self.n_classes).to(out.features[mods[0]].dtype)
            counts += onehot.sum(0).cpu()
            for m in mods:
                contrib = onehot.t() @ out.features[m]
                sums[m] = contrib if sums[m] is None else sums[m] + contrib
        self.student.train(was)
        protos = {}
        for m in mods:
            means = sums[m] / counts.clamp(min=1).to(sums[m].device).unsqueeze(1)
            means[(counts == 0).to(means.device)] = float("nan")
            protos[m] = means
        return protos

    def on_epoch_start(self, epoch, generator):
        if self._train_part is None:
            return  # no training part given: prototypes come from the first batch (see training_step)
        if self.params["prototype_update"] == "epoch" or not self.prototypes:
            self.prototypes = self.compute_prototypes(self._train_part)

    @torch.no_grad()
    def _ema_update(self, features: dict, y: torch.Tensor) -> None:
        mom = float(self.params["momentum"])
        for m in (self.params["visual"], self.params["eeg"]):
            batch_means = losses.class_prototypes(features[m].detach(), y, self.n_classes)
            present = ~torch.isnan(batch_means).any(dim=1)
            old = self.prototypes[m].clone()  # a new tensor: the step's loss graph keeps the old one
            fresh = torch.isnan(old).any(dim=1) & present
            upd = present & ~fresh
            old[upd] = mom * old[upd] + (1 - mom) * batch_means[upd]
            old[fresh] = batch_means[fresh]
            self.prototypes[m] = old

    # -------------------------------------------------------------- the loss
    def training_step(self, batch):
        out = self.student(batch)
        y = batch["y"]
        vis, eeg = self.params["visual"], self.params["eeg"]
        if not self.prototypes:  # used without configure(): the first batch's class means
            self.prototypes = {m: losses.class_prototypes(out.features[m].detach(), y, self.n_classes) for m in (vis, eeg)}
        zv, ze = out.features[vis], out.features[eeg]
        cv, ce_ = self.prototypes[vis].to(zv.dtype), self.prototypes[eeg].to(ze.dtype)
        pv = losses.prototype_probs(zv, y, cv)
        pe = losses.prototype_probs(ze, y, ce_)
        rv, re = losses.convergence_rate(pv.detach()), losses.convergence_rate(pe.detach())
        lam_v, lam_e = losses.rebalance_weights(rv, re)
        lv = losses.prototype_loss(zv, y, cv)
        le = losses.prototype_loss(ze, y, ce_)
        a = float(self.params["alpha"])
        ce = self.task_loss(out.logits, y)
        terms = {"ce": (1 - a) * ce, "proto_v": a * lam_v * lv, "proto_e": a * lam_e * le}
        self.diagnostics = {"lambda_v": lam_v, "lambda_e": lam_e, "r_v": float(rv), "r_e": float(re),
                            "proto_loss_v": float(lv.detach()), "proto_loss_e": float(le.detach())}
        if self.params["prototype_update"] == "ema" and self.training:
            self._ema_update(out.features, y)
        return out.logits, terms


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "proto_teacher": {"description": "CDGKD prototype-based modality rebalancing teacher (eq. 1-6)",
                      "params": {"alpha": {"default": 0.5, "lo": 0.0, "hi": 1.0},
                                 "prototype_update": {"default": "epoch", "kind": "choice", "choices": ["epoch", "ema"]},
                                 "momentum": {"default": 0.9, "lo": 0.0, "hi": 1.0, "hi_open": True},
                                 "visual": {"default": "face", "kind": "str"},
                                 "eeg": {"default": "eeg", "kind": "str"},
                                 "eval_batch_size": {"default": 256, "kind": "int", "lo": 1}}},
}

METHODS = {"proto_teacher": ProtoTeacher}
