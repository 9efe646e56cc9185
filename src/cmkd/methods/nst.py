"""Neuron selectivity transfer (Huang & Wang 2017, "Like What You Like: Knowledge Distill via
Neuron Selectivity Transfer", arXiv:1707.01219), cross-modal.

Objective (RepDistiller ``--distill nst -a 0 -b 50``;
the weights are the ``weights`` preset, ``paper`` by default, each value with its source in
this module's ``REGISTER`` and docs/kd_weights.md):

    L = gamma * CE(y, s) + alpha * KD + beta * L_MMD^2(F_T, F_S)

with the squared MMD of the L2-normalised channel maps under the polynomial kernel
``k(x, y) = (x^T y)^2`` (:func:`cmkd.losses.nst`). ``beta`` multiplies the MMD as the authors' code
does (TuSimple/neuron-selectivity-transfer: ``kt_weight = 50`` on ``mmd_poly``, no factor 1/2;
docs/kd_weights.md).
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

``positions`` chooses what NST's positions are:

- ``spatial`` (default): the maps' spatial/temporal positions, as the paper and RepDistiller;
- ``batch``: the inputs of the mini-batch (:func:`cmkd.losses.nst_over_batch`), for tracks where
  one side has no spatial axis (the CMCRD eye network's ``hint`` is a vector ``(B, C)``: with
  ``spatial``, NST is identically 0 there and transfers nothing). A neuron's selectivity pattern
  is then its response over the batch's inputs (maps global-average-pooled over their positions
  first). A reconstruction of ours, not the paper's: the CMCRD comparison's NST row runs it and
  its caption says so.
"""
from __future__ import annotations

import warnings

from cmkd import losses
from cmkd.methods.zoo_common import ZooMethod, feature, match_spatial, where


class NST(ZooMethod):
    name = "nst"

    def _features(self, s_out, t_out):
        p = self.params
        s = feature(s_out, p["feature"], where(self, "feature"), "student")
        t = feature(t_out, p["teacher_feature"] or p["feature"], where(self, "teacher_feature"), "teacher")
        return s, t

    def _pair(self, s_out, t_out):
        return match_spatial(*self._features(s_out, t_out))

    def configure(self, parts=None, device=None, optimizer=None, **_):
        """Check the feature names and, for spatial positions, warn when the common map has a
        single position (NST is then constant: every normalised channel is +-1). Nothing to build."""
        s_out, t_out = self.probe(parts, device)
        if self.params["positions"] == "batch":
            self._features(s_out, t_out)
            return
        s, _t = self._pair(s_out, t_out)
        if s[0, 0].numel() == 1:
            warnings.warn(f"nst: the student and teacher maps share a single spatial position "
                          f"(student map {tuple(s.shape[1:])}); the NST term is constant and transfers "
                          "nothing. Take the hint from an earlier stage (encoders.face.hint_stage) or use larger "
                          "inputs (e.g. face frames of 64 px or more), or set positions: batch.", stacklevel=2)

    def feature_terms(self, batch, s_out, t_out):
        if self.params["positions"] == "batch":
            s, t = self._features(s_out, t_out)
            return {"nst": self.params["beta"] * losses.nst_over_batch(s, t.detach())}
        s, t = self._pair(s_out, t_out)
        return {"nst": self.params["beta"] * losses.nst(s, t.detach())}


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "nst": {"roles": ["teacher"], "description": "Huang & Wang 2017 neuron selectivity transfer",
            "extends": ["zoo", "teacher_feature"],
            # beta around the authors' and RepDistiller's 50, two decades each side
            "search": {"beta": {"lo": 0.5, "hi": 5000.0, "log": True}},
            "params": {"beta": {"default": 50.0, "lo": 0.0},
                       "feature": {"default": "hint", "kind": "str"},
                       "positions": {"default": "spatial", "kind": "choice", "choices": ["spatial", "batch"],
                                     "doc": "NST's positions: the maps' spatial positions (the paper) or the "
                                            "batch's inputs (a reconstruction for vector features)"},
                       "weights": {"default": "paper", "kind": "choice", "choices": ["paper", "repdistiller", "previous"],
                        "doc": "preset of the loss weights: the method's paper, RepDistiller's CIFAR-100 commands, or the values run at 912213b"}},
            # paper: the authors' code (TuSimple/neuron-selectivity-transfer, config/cfgs.py: kt_weight = 50 for
            # kt_type 'mmd' with mmd_kernel 'poly'; symbol/inception_bn.py passes it with c = 0 to symbol/transfer.py
            # mmd_poly, the grad_scale of the MMD itself, no factor 1/2); repdistiller: scripts/run_cifar_distill.sh
            # (-a 0 -b 50); sources in docs/kd_weights.md
            "presets": {"paper": {"beta": 50.0}, "repdistiller": {"beta": 50.0}, "previous": {"beta": 50.0}}},
}

METHODS = {"nst": NST}
