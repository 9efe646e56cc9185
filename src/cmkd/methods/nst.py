"""Neuron selectivity transfer (Huang & Wang 2017, "Like What You Like: Knowledge Distill via
Neuron Selectivity Transfer", arXiv:1707.01219), cross-modal.

Objective (RepDistiller ``--distill nst -a 0 -b 50``):

    L = gamma * CE(y, s) + alpha * KD + beta * L_MMD^2(F_T, F_S)

with the squared MMD of the L2-normalised channel maps under the polynomial kernel
``k(x, y) = (x^T y)^2`` (:func:`cmkd.losses.nst`; the paper's ``lambda / 2`` is our ``beta``).
RepDistiller sums NST over several intermediate layer pairs; our networks expose one hint map
per encoder, so one pair is used: the student's ``feature`` (default ``hint``) and the teacher's
``teacher_feature`` (null: the same name; ``hint_eeg`` to match the teacher's EEG map).

NST compares maps channel by channel over the same positions, so the two maps must share their
spatial size: both are adaptive-average-pooled to a common size first
(:func:`cmkd.methods.zoo_common.match_spatial`: the element-wise smaller size for equal ranks,
flattened and pooled to the shorter length for different ranks; RepDistiller pools the larger map
to the smaller one). Channel counts may differ (the kernel compares channels pairwise). A map with
a single position makes NST degenerate (each normalised channel is +-1): use inputs large enough
to leave a spatial map (face frames of 64 px or more for the 32x-strided visual encoders).
No learned parameters.
"""
from __future__ import annotations

import warnings

from cmkd import losses
from cmkd.methods.zoo_common import ZooMethod, feature, match_spatial, where


class NST(ZooMethod):
    name = "nst"

    def _pair(self, s_out, t_out):
        p = self.params
        s = feature(s_out, p["feature"], where(self, "feature"), "student")
        t = feature(t_out, p["teacher_feature"] or p["feature"], where(self, "teacher_feature"), "teacher")
        return match_spatial(s, t)

    def configure(self, parts=None, device=None, optimizer=None, **_):
        """Check the feature names and warn when the common map has a single position (NST is
        then constant: every normalised channel is +-1). Nothing to build."""
        s, _t = self._pair(*self.probe(parts, device))
        if s[0, 0].numel() == 1:
            warnings.warn(f"nst: the student and teacher maps share a single spatial position "
                          f"(student map {tuple(s.shape[1:])}); the NST term is constant and transfers "
                          "nothing. Take the hint from an earlier stage (encoders.face.hint_stage) or use larger "
                          "inputs (e.g. face frames of 64 px or more).", stacklevel=2)

    def feature_terms(self, batch, s_out, t_out):
        s, t = self._pair(s_out, t_out)
        return {"nst": self.params["beta"] * losses.nst(s, t.detach())}


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "nst": {"roles": ["teacher"], "description": "Huang & Wang 2017 neuron selectivity transfer",
            "extends": ["zoo", "teacher_feature"],
            # beta around RepDistiller's 50 (CIFAR-100), two decades each side
            "search": {"beta": {"lo": 0.5, "hi": 5000.0, "log": True}},
            "params": {"beta": {"default": 50.0, "lo": 0.0},
                       "feature": {"default": "hint", "kind": "str"}}},
}

METHODS = {"nst": NST}
