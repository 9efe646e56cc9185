"""AMBOKD (Li, Yan, Lan, Xiang, Zhou, Lai & Tang 2024, "Adaptive modality balanced online
knowledge distillation for brain-eye-computer based dim object detection", arXiv 2407.01894)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cmkd import losses
from cmkd.errors import ConfigError
from cmkd.methods.base import Method
from cmkd.models.ambokd_net import AMBOKDNet

VISUAL, EEG = "face", "eeg"


def balance_coefficients(s_v: float, s_e: float, gamma: float) -> tuple[float, float]:
    """Gradient modulation of the dominant modality (OGM, Peng et al. 2022, eq. 9-10, the rule
    AMBOKD's "adjusting the training gradients" follows): with ``rho_v = s_v / s_e``,
    ``k_v = 1 - tanh(gamma * (rho_v - 1))`` if ``rho_v > 1`` else 1, symmetrically for EEG.
    Only the stronger (more confident) modality is slowed down; equal scores give (1, 1)."""
    if s_v <= 0 or s_e <= 0:
        return 1.0, 1.0
    rho_v, rho_e = s_v / s_e, s_e / s_v
    k_v = 1.0 - math.tanh(gamma * (rho_v - 1.0)) if rho_v > 1 else 1.0
    k_e = 1.0 - math.tanh(gamma * (rho_e - 1.0)) if rho_e > 1 else 1.0
    return k_v, k_e


def importance_weights(s_v: float, s_e: float) -> tuple[float, float]:
    """Importance of the two unimodal losses: proportional to each modality's *error*
    ``1 - s_m`` and normalised to a mean of 1, so the weaker modality's loss weighs more;
    equal scores give (1, 1); two perfect modalities give (1, 1)."""
    ev, ee = 1.0 - s_v, 1.0 - s_e
    if ev + ee <= 0:
        return 1.0, 1.0
    return 2.0 * ev / (ev + ee), 2.0 * ee / (ev + ee)


class AMBOKD(Method):
    """Adaptive modality balanced online KD, on the face_eeg-to-face track.

    The network (``architecture: ambokd``, ``modalities: teacher``) has a visual branch, an EEG
    branch and a multi-head-attention fusion branch (:class:`cmkd.models.ambokd_net.AMBOKDNet`);
    all three are trained together from scratch (online KD: no pre-trained teacher, no
    ``requires``). The reported and saved network's predictions are the visual branch's (it reads
    the face only), so AMBOKD appears in the student table as a visual student.

    Loss per batch (branches ``b in {v, e, f}``, logits ``l_b``):

    ``L = w_v CE(l_v) + w_e CE(l_e) + CE(l_f)
    + lambda_kd * mean_{b != b'} T^2 KL(softmax(l_b'/T).detach() || softmax(l_b/T))``

    - mutual learning between modalities: every branch learns from every other branch's
      (detached) soft predictions, the DML form of online KD (6 ordered pairs, mean);
    - adaptive modality balancing, from the batch's confidence ``s_m`` = mean softmax
      probability of the true class of the unimodal branch m (detached):
      importance weights ``w_v, w_e`` (:func:`importance_weights`: the weaker modality's loss
      weighs more) and gradient modulation of the stronger modality's encoder by ``k_m``
      (:func:`balance_coefficients`; OGM without the Gaussian "GE" noise), applied through the
      network's ``grad_scale`` on the encoder outputs, so every loss term's gradient into that
      encoder is scaled.

    Left open by the paper's description, our documented choices: the exact importance and
    gradient formulas (above), DML-style symmetric distillation among all three branches,
    ``lambda_kd`` 1, ``T`` 3 (``temperature``), ``gamma`` 0.5 (``balance_gamma``), the fusion
    branch's attention over the two modality tokens. Terms: ``ce_v``, ``ce_e``, ``ce_f``, ``kd``.
    Diagnostics: ``s_v``, ``s_e``, ``w_v``, ``w_e``, ``k_v``, ``k_e``. Classification only.
    """

    teachers_trainable = False

    def __init__(self, student, teachers, params, task, n_classes):
        super().__init__(student, teachers, params, task, n_classes)
        where = self.method_key

        if not isinstance(student, AMBOKDNet):
            raise ConfigError(f"{where}.architecture: the ambokd method needs 'architecture: ambokd' "
                              "(and modalities: teacher)")
        if task != "classification":
            raise ConfigError(f"{where}: needs a classification dimension, got {task!r}")
        self.diagnostics: dict[str, float] = {}

    def training_step(self, batch):
        out = self.student(batch)
        f, y = out.features, batch["y"]
        if "logits_eeg" not in f:
            raise ConfigError(f"{self.method_key}.modalities: the batch has no EEG; use modalities: teacher")
        lv, le, lf = f["logits_face"], f["logits_eeg"], f["logits_fusion"]
        with torch.no_grad():
            s_v = float(F.softmax(lv, 1).gather(1, y.unsqueeze(1)).mean())
            s_e = float(F.softmax(le, 1).gather(1, y.unsqueeze(1)).mean())
        if self.params["balance"]:
            w_v, w_e = importance_weights(s_v, s_e)
            k_v, k_e = balance_coefficients(s_v, s_e, float(self.params["balance_gamma"]))
        else:
            w_v = w_e = k_v = k_e = 1.0
        self.student.grad_scale[VISUAL] = k_v  # read by the backward pass of this step
        self.student.grad_scale[EEG] = k_e
        t = float(self.params["temperature"])
        branches = [lv, le, lf]
        pairs = [losses.kd(branches[i], branches[j].detach(), t)
                 for i in range(3) for j in range(3) if i != j]
        terms = {"ce_v": w_v * F.cross_entropy(lv, y), "ce_e": w_e * F.cross_entropy(le, y),
                 "ce_f": F.cross_entropy(lf, y),
                 "kd": float(self.params["lambda_kd"]) * torch.stack(pairs).mean()}
        self.diagnostics = {"s_v": s_v, "s_e": s_e, "w_v": w_v, "w_e": w_e, "k_v": k_v, "k_e": k_e}
        return lv, terms


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "ambokd": {"description": "AMBOKD (Li et al. 2024) adaptive modality-balanced online KD",
               "evaluates": "student",  # trains on face + EEG; the evaluated network is the visual branch
               "search": {"lambda_kd": "weight", "temperature": "temperature"},
               "params": {"lambda_kd": {"default": 1.0, "lo": 0.0},
                          "temperature": {"default": 3.0, "lo": 0.0, "lo_open": True},
                          "balance_gamma": {"default": 0.5, "lo": 0.0},
                          "balance": {"default": True, "kind": "bool"}}},
}

METHODS = {"ambokd": AMBOKD}
