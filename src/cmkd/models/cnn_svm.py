"""CNN+SVM decision-level fusion teacher of CDGKD Table 3 (Huang et al. 2019); see :mod:`cmkd.models.face_eeg`."""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from cmkd.models.base import Output
from cmkd.models.face_eeg import VISUAL, _Base, _encoder, _get

class CNNSVMNet(_Base):
    """CNN+SVM decision-level fusion (Huang, Yang, Liu & Pan 2019, "Combining facial expressions
    and electroencephalography to enhance emotion recognition", Future Internet 11(5):105).

    Huang et al. classify each modality on its own (a CNN on face frames; a classifier on EEG)
    and fuse the two *decisions*, not features. Here:

    - each modality: its configured encoder (a CNN) and a linear classifier -> per-modality
      class scores ``logits_face``, ``logits_eeg`` (trained with cross-entropy by the method);
    - decision-level fusion: a linear SVM over the concatenated per-modality class
      probabilities (2K inputs -> K scores), trained with the multi-class hinge loss and an L2
      penalty (the method :class:`cmkd.methods.teacher_baselines.CNNSVM`). Its inputs are
      detached, so the SVM fuses decisions without changing the per-modality CNNs, as a
      separately fitted SVM would.

    Simplification (documented choice): an SVM fitted by a solver after the CNNs would break the
    single torch loop; a linear SVM trained by SGD on the hinge loss (primal form, C folded into
    the L2 weight) in the same loop is the torch equivalent. The network's logits are the SVM
    scores (argmax = the fused decision).
    """

    def __init__(self, spec: Mapping, where: str = "models"):
        super().__init__(spec, where)
        self.encoders = nn.ModuleDict({m: _encoder(spec, m, where) for m in self.modalities})
        k = self.n_outputs
        self.classifiers = nn.ModuleDict({m: nn.Linear(int(self.encoders[m].out_dim), k) for m in self.modalities})
        self.svm = nn.Linear(len(self.modalities) * k, k)

    def forward(self, batch):
        feats, out = {}, {}
        for m in self.modalities:
            f, hint = self.encoders[m](_get(batch, m, self.modalities))
            feats[m], feats[f"hint_{m}"] = f, hint
            out[m] = self.classifiers[m](f)
            feats[f"logits_{m}"] = out[m]
        if self.n_outputs == 1:
            dec = [out[m] for m in self.modalities]
        else:
            dec = [F.softmax(out[m], dim=1) for m in self.modalities]
        svm_in = torch.cat(dec, dim=1).detach()
        scores = self.svm(svm_in)
        feats.update(embedding=svm_in, fused=torch.cat([feats[m] for m in self.modalities], dim=1),
                     hint=feats[f"hint_{VISUAL}"])
        return Output(scores, feats)


ARCHITECTURES = {"cnn_svm": CNNSVMNet}
