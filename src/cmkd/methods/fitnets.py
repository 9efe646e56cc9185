"""FitNets (Romero et al. 2015, "FitNets: Hints for Thin Deep Nets", ICLR), cross-modal.

Objective (RepDistiller's joint training of the hint, ``--distill hint -a 0 -b 100``;
the weights are the ``weights`` preset, ``paper`` by default, each value with its source in
this module's ``REGISTER`` and docs/kd_weights.md):

    L = gamma * CE(y, s) + alpha * KD + beta * L_HT,
    L_HT = 1/2 ||u_h(x) - r(v_g(x); W_r)||^2   (Romero et al. 2015, eq. (3); :func:`cmkd.losses.fitnets`
                                                 takes the mean over elements)

``u_h`` is the teacher's hint layer, ``v_g`` the student's guided layer and ``r`` the regressor,
which belongs to the method and is trained with the student (its parameters are in
:meth:`trainable_parameters`; it is not saved with the student, which is all that is evaluated).

Cross-modal adaptation (documented choice). The student (e.g. a face network) and the teacher
(e.g. face + EEG) produce hint maps that can differ in channels and in spatial size and rank
(``(B, C, h, w)`` for face, ``(B, C', L)`` for EEG). With ``feature: hint``:

1. both maps are brought to a common spatial size by adaptive average pooling
   (:func:`cmkd.methods.zoo_common.match_spatial`: same rank -> the element-wise smaller size;
   different ranks -> spatial axes flattened and pooled to the shorter length);
2. the regressor is a 1x1 convolution (a per-position linear map ``C_s -> C_t`` with bias)
   applied to the pooled student map. Romero et al. use a convolutional regressor whose output
   follows the teacher hint's non-linearity; our teacher hints are batch-normalised maps that
   take negative values, so the regressor is linear (no ReLU). Pooling before or after a
   1x1 convolution gives the same result (both are linear and act on different axes).

With ``feature: embedding`` the hint is the penultimate vector ``embedding`` of both networks and
the regressor is a ``Linear(D_s, D_t)``.

Params: ``beta`` (100, RepDistiller), ``gamma`` (1), ``alpha`` (0: no Hinton term),
``temperature`` (4), ``feature`` (``hint`` | ``embedding``; the student feature read),
``teacher_feature`` (null: the same name as ``feature``; e.g. ``hint_eeg`` to take the hint of
the teacher's EEG encoder rather than of its first modality).

The regressor is sized from the real feature shapes in :meth:`configure` (called by the training
loop with the data parts and the optimiser, to which it is added as a new parameter group).
Deviation from Romero et al.: no separate hint-only pre-training stage (RepDistiller trains the
hint jointly with the task loss, as here).
"""
from __future__ import annotations

from torch import nn

from cmkd import losses
from cmkd.errors import ConfigError
from cmkd.methods.zoo_common import ZooMethod, feature, match_spatial, where


class FitNets(ZooMethod):
    name = "fitnets"

    def __init__(self, student, teachers, params, task, n_classes):
        super().__init__(student, teachers, params, task, n_classes)
        self.regressor = None  # built in configure() from the real feature shapes

    @property
    def _teacher_key(self) -> str:
        return self.params["teacher_feature"] or self.params["feature"]

    def _pair(self, s_out, t_out):
        s = feature(s_out, self.params["feature"], where(self, "feature"), "student")
        t = feature(t_out, self._teacher_key, where(self, "teacher_feature"), "teacher")
        if self.params["feature"] == "embedding":
            if s.dim() != 2 or t.dim() != 2:
                raise ConfigError(f"{where(self, 'feature')}: 'embedding' needs (B, D) vectors, got "
                                  f"{tuple(s.shape)} and {tuple(t.shape)}")
            return s, t
        return match_spatial(s, t)

    def configure(self, parts=None, device=None, optimizer=None, **_):
        s_out, t_out = self.probe(parts, device)
        s, t = self._pair(s_out, t_out)
        if self.params["feature"] == "embedding":
            self.regressor = nn.Linear(s.shape[1], t.shape[1])
        else:
            self.regressor = nn.Conv1d(s.shape[1], t.shape[1], kernel_size=1)
        self.regressor.to(device if device is not None else s.device)
        self.add_to_optimizer(optimizer, self.regressor)

    def regress(self, s):
        if self.params["feature"] == "embedding":
            return self.regressor(s)
        b, c = s.shape[:2]
        return self.regressor(s.reshape(b, c, -1)).reshape(b, -1, *s.shape[2:])

    def feature_terms(self, batch, s_out, t_out):
        if self.regressor is None:
            raise RuntimeError("fitnets: call configure(parts=..., device=..., optimizer=...) before training "
                               "(it builds the regressor)")
        s, t = self._pair(s_out, t_out)
        return {"fitnets": self.params["beta"] * losses.fitnets(self.regress(s), t.detach())}


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "fitnets": {"roles": ["teacher"], "description": "Romero et al. 2015 hints",
                "extends": ["zoo", "teacher_feature"],
                # beta around RepDistiller's 100 (CIFAR-100), two decades each side
                "search": {"beta": {"lo": 1.0, "hi": 10000.0, "log": True}},
                "params": {"beta": {"default": 100.0, "lo": 0.0},
                           "feature": {"default": "hint", "kind": "choice", "choices": ["hint", "embedding"]},
                           "weights": {"default": "paper", "kind": "choice", "choices": ["paper", "repdistiller", "previous"],
                            "doc": "preset of the loss weights: the method's paper, RepDistiller's CIFAR-100 commands, or the values run at 912213b"}},
                # paper: Romero et al. 2015 train the hint in a stage of its own (§2.3, Algorithm 1: the hint loss alone,
                # then KD), so the paper gives no weight of the hint beside the CE: RepDistiller's beta 100
                # (scripts/run_cifar_distill.sh:7, -a 0 -b 100); sources in docs/kd_weights.md
                "presets": {"paper": {"beta": 100.0}, "repdistiller": {"beta": 100.0}, "previous": {"beta": 100.0}}},
}

METHODS = {"fitnets": FitNets}
