"""Probabilistic knowledge transfer (Passalis & Tefas 2018, "Learning Deep Representations with
Probabilistic Knowledge Transfer", ECCV), cross-modal.

Objective (RepDistiller ``--distill pkt -a 0 -b 30000``;
the weights are the ``weights`` preset, ``paper`` by default, each value with its source in
this module's ``REGISTER`` and docs/kd_weights.md):

    L = gamma * CE(y, s) + alpha * KD + beta * KL(P_T || P_S)

with ``P`` the conditional probabilities of the cosine-similarity kernel over the batch
(:func:`cmkd.losses.pkt`). PKT matches distributions of pairwise similarities, so the student and
teacher features may differ in size and modality.

``feature``: ``embedding`` (default; RepDistiller uses the penultimate vector ``feat[-1]``) or
``hint`` (flattened); ``teacher_feature`` (null: the same name). No learned parameters.
"""
from __future__ import annotations

from cmkd import losses
from cmkd.methods.zoo_common import RelationalMethod


class PKT(RelationalMethod):
    name = "pkt"

    def relation_loss(self, s, t):
        return losses.pkt(s, t)


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "pkt": {"roles": ["teacher"], "description": "Passalis & Tefas 2018 probabilistic KT",
            "extends": ["relational"],
            # beta around RepDistiller's 30000 (CIFAR-100), two decades each side
            "search": {"beta": {"lo": 300.0, "hi": 3000000.0, "log": True}},
            "params": {"beta": {"default": 30000.0, "lo": 0.0},
                       "weights": {"default": "paper", "kind": "choice", "choices": ["paper", "repdistiller", "previous"],
                        "doc": "preset of the loss weights: the method's paper, RepDistiller's CIFAR-100 commands, or the values run at 912213b"}},
            # paper: Passalis & Tefas 2018 train the student with the PKT divergence alone (the authors' code,
            # passalis/probabilistic_kt nn/pkt.py:8, knowledge_transfer(..., supervised_weight=0): no CE beside it), so
            # the paper gives no weight beside the CE: RepDistiller's beta 30000 (scripts/run_cifar_distill.sh:19,
            # -a 0 -b 30000); sources in docs/kd_weights.md
            "presets": {"paper": {"beta": 30000.0}, "repdistiller": {"beta": 30000.0}, "previous": {"beta": 30000.0}}},
}

METHODS = {"pkt": PKT}
