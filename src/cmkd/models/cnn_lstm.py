"""CNN+LSTM fusion teacher of CDGKD Table 3 (Saffaryazdi et al. 2022); see :mod:`cmkd.models.face_eeg`."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from cmkd.errors import ConfigError, DataError
from cmkd.models.base import Output
from cmkd.models.face_eeg import EEG, VISUAL, _Base, _classify, _encoder, _get, _head, _model_cfg, tokens

class CNNLSTMNet(_Base):
    """CNN+LSTM fusion (Saffaryazdi et al. 2022, "Using facial micro-expressions in combination
    with EEG and physiological signals for emotion recognition", Front. Psychol. 13:864047).

    Convolutional feature extractors per modality followed by recurrent (LSTM) modelling of the
    temporal sequence, fused at feature level. Here:

    - visual: the configured frame backbone applied to every frame (B*F frames), an LSTM over
      the F frame vectors, last hidden state;
    - EEG: the configured EEG encoder's temporal feature map (TSception's ``(num_S, L)`` hint) as
      a sequence of L steps, an LSTM, last hidden state;
    - concatenation -> the configured head.

    ``model.lstm_hidden`` (32) and ``model.lstm_layers`` (1). Simplifications: no optical-flow /
    micro-expression spotting stage and no hand-crafted physiological features (the paper's
    pipeline); a single LSTM layer at small scale.
    """

    def __init__(self, spec: Mapping, where: str = "models"):
        super().__init__(spec, where)
        c = _model_cfg(spec, where, {"lstm_hidden": 32, "lstm_layers": 1})
        self.encoders = nn.ModuleDict({m: _encoder(spec, m, where) for m in self.modalities})
        hv = self.encoders[VISUAL]
        if not hasattr(hv, "frames"):
            raise ConfigError(f"{where}.{VISUAL}.name: cnn_lstm needs a frame encoder (timm) for the face")
        eeg_hint_ch = int(getattr(self.encoders[EEG], "hint_shape", (self.encoders[EEG].out_dim,))[0])
        self.lstm = nn.ModuleDict({
            VISUAL: nn.LSTM(int(hv.out_dim), c["lstm_hidden"], c["lstm_layers"], batch_first=True),
            EEG: nn.LSTM(eeg_hint_ch, c["lstm_hidden"], c["lstm_layers"], batch_first=True),
        })
        self.head = _head(2 * c["lstm_hidden"], spec, self.n_outputs, where)

    def _frames(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-frame vectors (B, F, D), hint): the backbone's pooled frames and its last map, or the
        frozen features' head (encoders.face.frozen: :class:`cmkd.models.visual_frozen.FrozenFeatureHead`)."""
        enc = self.encoders[VISUAL]
        if not hasattr(enc, "backbone"):
            return enc.frames(x)
        if x.dim() != 5:
            raise DataError(f"expected face clips (B, F, 3, H, W), got shape {tuple(x.shape)}")
        b, f = x.shape[:2]
        frames = enc._prepare(x.reshape(b * f, *x.shape[2:]))
        fmap = enc.backbone.forward_features(frames)
        per_frame = enc.backbone.forward_head(fmap).reshape(b, f, -1)  # (B, F, D)
        hint = enc._channels_first(fmap)
        return per_frame, hint.reshape(b, f, *hint.shape[1:]).mean(dim=1)

    def forward(self, batch):
        seq_v, hint_v = self._frames(_get(batch, VISUAL, self.modalities))
        feat_e, hint_e = self.encoders[EEG](_get(batch, EEG, self.modalities))
        seq_e = tokens(hint_e)  # (B, L, num_S)
        _, (hv, _) = self.lstm[VISUAL](seq_v)
        _, (he, _) = self.lstm[EEG](seq_e)
        zv, ze = hv[-1], he[-1]
        fused = torch.cat([zv, ze], dim=1)
        logits, emb = _classify(self.head, fused)
        return Output(logits, {VISUAL: zv, EEG: ze, "fused": fused, "embedding": emb, "hint": hint_v,
                               f"hint_{VISUAL}": hint_v, f"hint_{EEG}": hint_e})


ARCHITECTURES = {"cnn_lstm": CNNLSTMNet}
