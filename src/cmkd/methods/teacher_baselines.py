"""The multimodal teacher baselines of CDGKD Table 3, each with its own architecture
(:mod:`cmkd.models.cnn_svm`, :mod:`cmkd.models.cnn_lstm`, :mod:`cmkd.models.dgc_jca`,
:mod:`cmkd.models.emotionkd_teacher`; the config entry sets ``architecture: <name>`` and
``modalities: teacher``).

- ``cnn_svm``: :class:`CNNSVM` (per-modality cross-entropy + a hinge-loss linear SVM on the
  per-modality decisions);
- ``cnn_lstm``, ``dgc_jca``, ``emotionkd_teacher``: cross-entropy on the network's logits (the
  training objective of each of these papers' classifiers).
"""
from __future__ import annotations

import torch.nn.functional as F

from cmkd.errors import ConfigError
from cmkd.methods.base import Method
from cmkd.models.registry import architecture


class _ArchTeacher(Method):
    architecture: str = ""

    def __init__(self, student, teachers, params, task, n_classes):
        super().__init__(student, teachers, params, task, n_classes)

        cls = architecture(self.architecture)
        if not isinstance(student, cls):
            raise ConfigError(f"{self.method_key}.architecture: the {self.architecture} method needs "
                              f"'architecture: {self.architecture}' and 'modalities: teacher'")

    def training_step(self, batch):
        out = self.student(batch)
        return out.logits, {"ce": self.task_loss(out.logits, batch["y"])}


class CNNLSTM(_ArchTeacher):
    """CNN+LSTM teacher (Saffaryazdi et al. 2022), cross-entropy; see
    :class:`cmkd.models.cnn_lstm.CNNLSTMNet`."""

    architecture = "cnn_lstm"


class DGCJCA(_ArchTeacher):
    """DGC+JCA teacher (Cheng et al. 2024), cross-entropy; see
    :class:`cmkd.models.dgc_jca.DGCJCANet`."""

    architecture = "dgc_jca"


class EmotionKDTeacher(_ArchTeacher):
    """EmotionKD's multimodal teacher (Liu et al. 2023), trained with cross-entropy as the released
    ``get_MultiModal_model`` (``categorical_crossentropy`` on its prediction); see
    :class:`cmkd.models.emotionkd_teacher.EmotionKDTeacherNet`."""

    architecture = "emotionkd_teacher"


class CNNSVM(_ArchTeacher):
    """CNN+SVM decision-level fusion (Huang et al. 2019); network
    :class:`cmkd.models.cnn_svm.CNNSVMNet`.

    ``L = CE(l_face) + CE(l_eeg) + L_hinge(svm) + svm_l2 / 2 * ||W_svm||^2``

    - per-modality CNN classifiers trained on their own (cross-entropy each);
    - the linear SVM over the (detached) per-modality class probabilities, trained with the
      multi-class (Weston-Watkins) hinge loss
      ``L_hinge = mean_i 1/K sum_{k != y_i} max(0, 1 - s_{i,y_i} + s_{i,k})``
      (``F.multi_margin_loss``; for K = 2 the binary hinge ``max(0, 1 - (s_y - s_other))`` / 2)
      and the primal L2 penalty on its weights (``svm_l2``, 1e-3; the SVM's ``1 / C``).

    Terms: ``ce_face``, ``ce_eeg``, ``hinge`` (including the L2 penalty). Classification only.
    """

    architecture = "cnn_svm"

    def __init__(self, student, teachers, params, task, n_classes):
        super().__init__(student, teachers, params, task, n_classes)
        if task != "classification":
            raise ConfigError(f"{self.method_key}: the SVM's hinge loss needs a classification dimension, got {task!r}")

    def training_step(self, batch):
        out = self.student(batch)
        y = batch["y"]
        f = out.features
        hinge = F.multi_margin_loss(out.logits, y, p=1, margin=1.0)
        l2 = 0.5 * float(self.params["svm_l2"]) * self.student.svm.weight.pow(2).sum()
        return out.logits, {"ce_face": F.cross_entropy(f["logits_face"], y),
                            "ce_eeg": F.cross_entropy(f["logits_eeg"], y), "hinge": hinge + l2}


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "cnn_svm": {"description": "CNN+SVM decision-level fusion teacher",
                "params": {"svm_l2": {"default": 0.001, "lo": 0.0}}},
    "cnn_lstm": {"description": "CNN+LSTM fusion teacher"},
    "dgc_jca": {"description": "DGC+JCA dense graph conv + joint cross-attention teacher"},
    "emotionkd_teacher": {"description": "EmotionKD multimodal teacher"},
}

METHODS = {"cnn_svm": CNNSVM, "cnn_lstm": CNNLSTM, "dgc_jca": DGCJCA, "emotionkd_teacher": EmotionKDTeacher}
