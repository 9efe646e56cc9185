"""Relational knowledge distillation (Park et al. 2019, "Relational Knowledge Distillation",
CVPR), cross-modal.

Objective (RepDistiller ``--distill rkd -a 0 -b 1``, ``RKDLoss(w_d=25, w_a=50)``;
the weights are the ``weights`` preset, ``paper`` by default, each value with its source in
this module's ``REGISTER`` and docs/kd_weights.md):

    L = gamma * CE(y, s) + alpha * KD + beta * (w_d * L_RKD-D + w_a * L_RKD-A)

``L_RKD-D``: Huber loss between the pairwise distances of the batch, each normalised by its mean
distance; ``L_RKD-A``: Huber loss between the cosines of the angles of all triplets
(:func:`cmkd.losses.rkd`). Distances and angles are computed within each network's own space, so
the student and teacher features may differ in size and modality.

``feature``: ``embedding`` (default; RepDistiller uses the penultimate vector ``feat[-1]``) or
``hint`` (flattened); ``teacher_feature`` (null: the same name). Params ``w_d`` (25), ``w_a`` (50)
as in Park et al. and RepDistiller. No learned parameters.
"""
from __future__ import annotations

from cmkd import losses
from cmkd.methods.zoo_common import RelationalMethod


class RKD(RelationalMethod):
    name = "rkd"

    def relation_loss(self, s, t):
        return losses.rkd(s, t, w_distance=self.params["w_d"], w_angle=self.params["w_a"])


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "rkd": {"roles": ["teacher"], "description": "Park et al. 2019 relational KD",
            "extends": ["relational"],
            # the overall weight (RepDistiller -b 1) and the distance/angle weights around Park et al.'s 25 / 50
            "search": {"beta": "weight", "w_d": {"lo": 2.5, "hi": 250.0, "log": True}, "w_a": {"lo": 5.0, "hi": 500.0, "log": True}},
            "params": {"beta": {"default": 1.0, "lo": 0.0},
                       "w_d": {"default": 25.0, "lo": 0.0},
                       "w_a": {"default": 50.0, "lo": 0.0},
                       "weights": {"default": "paper", "kind": "choice", "choices": ["paper", "repdistiller", "previous"],
                        "doc": "preset of the loss weights: the method's paper, RepDistiller's CIFAR-100 commands, or the values run at 912213b"}},
            # paper: the authors' code for image classification (lenscloth/RKD run_distill_classification.py:41,43:
            # --dist_ratio 25, --angle_ratio 50, beside the CE at weight 1: our w_d, w_a, beta 1); repdistiller:
            # distiller_zoo/RKD.py:10 (RKDLoss(w_d=25, w_a=50)) with -b 1 (scripts/run_cifar_distill.sh:17);
            # sources in docs/kd_weights.md
            "presets": {"paper": {"beta": 1.0, "w_d": 25.0, "w_a": 50.0}, "repdistiller": {"beta": 1.0, "w_d": 25.0, "w_a": 50.0},
                        "previous": {"beta": 1.0, "w_d": 25.0, "w_a": 50.0}}},
}

METHODS = {"rkd": RKD}
