"""Similarity-preserving KD (Tung & Mori 2019, "Similarity-Preserving Knowledge Distillation",
ICCV), cross-modal.

Objective (RepDistiller ``--distill similarity -a 0 -b 3000``;
the weights are the ``weights`` preset, ``paper`` by default, each value with its source in
this module's ``REGISTER`` and docs/kd_weights.md):

    L = gamma * CE(y, s) + alpha * KD + beta * L_SP,   L_SP = 1/b^2 ||G_T - G_S||_F^2

with ``G = normalise_rows(Q Q^T)`` the batch similarity of the flattened activations
(:func:`cmkd.losses.sp`; the paper's ``gamma`` weight is our ``beta``). SP compares ``b x b``
similarity matrices, so the student and teacher features may differ in size and modality.

``feature``: ``embedding`` (default: the penultimate vector each network's classifier reads) or
``hint`` (the hint map, flattened). RepDistiller takes the last convolutional map before
pooling (``feat[-2]``); in a cross-modal pair that map is modality-specific, while the embedding
is the representation both networks classify from, hence our default. ``teacher_feature``
(null: the same name) selects another teacher feature (e.g. ``hint_eeg``, ``fused``).
No learned parameters.
"""
from __future__ import annotations

from cmkd import losses
from cmkd.methods.zoo_common import RelationalMethod


class SP(RelationalMethod):
    name = "sp"

    def relation_loss(self, s, t):
        return losses.sp(s, t)


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "sp": {"roles": ["teacher"], "description": "Tung & Mori 2019 similarity-preserving KD",
           "extends": ["relational"],
           # beta around RepDistiller's 3000 (CIFAR-100), two decades each side
           "search": {"beta": {"lo": 30.0, "hi": 300000.0, "log": True}},
           "params": {"beta": {"default": 3000.0, "lo": 0.0},
                      "weights": {"default": "paper", "kind": "choice", "choices": ["paper", "repdistiller", "previous"],
                       "doc": "preset of the loss weights: the method's paper, RepDistiller's CIFAR-100 commands, or the values run at 912213b"}},
           # paper: gamma = 3000 in L = CE + gamma/b^2 sum ||G_T - G_S||_F^2 (Tung & Mori 2019, §4.1, CIFAR-10; the
           # paper's text not checked here), the value of RepDistiller's SP (scripts/run_cifar_distill.sh:11, -a 0 -b 3000),
           # a reimplementation the paper's first author verified (RepDistiller README.md, Acknowledgement);
           # sources in docs/kd_weights.md
           "presets": {"paper": {"beta": 3000.0}, "repdistiller": {"beta": 3000.0}, "previous": {"beta": 3000.0}}},
}

METHODS = {"sp": SP}
