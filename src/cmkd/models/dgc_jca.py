"""DGC+JCA teacher of CDGKD Table 3 (Cheng et al. 2024): dense graph convolution over EEG channels and
joint cross-attention; see :mod:`cmkd.models.face_eeg`."""
from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from cmkd.errors import ConfigError
from cmkd.models.base import Output
from cmkd.models.face_eeg import EEG, VISUAL, _Base, _classify, _encoder, _get, _head, _model_cfg, tokens

def band_powers(x: torch.Tensor, sampling_rate: float, bands) -> torch.Tensor:
    """(B, C, T) -> (B, C, n_bands) log mean spectral power per band (differential-entropy-like)."""
    spec = torch.fft.rfft(x.float(), dim=-1).abs().pow(2) / x.shape[-1]
    freqs = torch.fft.rfftfreq(x.shape[-1], d=1.0 / float(sampling_rate)).to(x.device)
    out = []
    for lo, hi in bands:
        sel = (freqs >= lo) & (freqs < hi)
        out.append(spec[..., sel].mean(dim=-1))
    return torch.log(torch.stack(out, dim=-1) + 1e-6)


EEG_BANDS = ((1.0, 4.0), (4.0, 8.0), (8.0, 14.0), (14.0, 31.0), (31.0, 50.0))


class DenseGraphConv(nn.Module):
    """Graph convolutions over EEG channels with a learnable dense adjacency and dense
    (DenseNet-style) connections between layers: layer l reads the concatenation of the input
    and all earlier layers' outputs. ``A`` is symmetrised and passed through ReLU, then
    normalised ``D^-1/2 (A + I) D^-1/2``."""

    def __init__(self, n_nodes: int, in_dim: int, growth: int, layers: int):
        super().__init__()
        self.adj = nn.Parameter(torch.rand(n_nodes, n_nodes) * 0.1 + torch.eye(n_nodes))
        self.layers = nn.ModuleList(nn.Linear(in_dim + i * growth, growth) for i in range(layers))
        self.out_dim = in_dim + layers * growth

    def norm_adj(self) -> torch.Tensor:
        a = F.relu((self.adj + self.adj.t()) / 2) + torch.eye(self.adj.shape[0], device=self.adj.device)
        d = a.sum(dim=1).rsqrt()
        return d.unsqueeze(1) * a * d.unsqueeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, D) -> (B, N, out_dim)
        a = self.norm_adj()
        feats = [x]
        for lin in self.layers:
            h = torch.cat(feats, dim=-1)
            feats.append(F.relu(lin(torch.einsum("nm,bmd->bnd", a, h))))
        return torch.cat(feats, dim=-1)


class JointCrossAttention(nn.Module):
    """Joint cross-attention (after Praveen et al. 2022, the JCA that DGC+JCA adopts): each
    modality attends to the *joint* sequence ``J = [X_v; X_e]``.

    For modality m with tokens ``X_m`` (B, L_m, d): joint correlation
    ``C_m = tanh(X_m W_m J^T / sqrt(d))`` (B, L_m, L_J); attention map
    ``H_m = ReLU(X_m W_x + C_m J W_c)``; attended ``X_m + H_m W_h``. Returns both attended
    sequences."""

    def __init__(self, d: int):
        super().__init__()
        self.d = d
        self.w_corr = nn.ModuleDict({m: nn.Linear(d, d, bias=False) for m in (VISUAL, EEG)})
        self.w_x = nn.ModuleDict({m: nn.Linear(d, d, bias=False) for m in (VISUAL, EEG)})
        self.w_c = nn.ModuleDict({m: nn.Linear(d, d, bias=False) for m in (VISUAL, EEG)})
        self.w_h = nn.ModuleDict({m: nn.Linear(d, d) for m in (VISUAL, EEG)})

    def forward(self, xs: dict) -> dict:
        joint = torch.cat([xs[VISUAL], xs[EEG]], dim=1)  # (B, L_J, d)
        out = {}
        for m, x in xs.items():
            c = torch.tanh(self.w_corr[m](x) @ joint.transpose(1, 2) / math.sqrt(self.d))
            h = F.relu(self.w_x[m](x) + self.w_c[m](c @ joint))
            out[m] = x + self.w_h[m](h)
        return out


class DGCJCANet(_Base):
    """DGC+JCA (Cheng, Liu, Feng & Jia 2024, "Dense graph convolutional with joint
    cross-attention network for multimodal emotion recognition", IEEE TCSS).

    - EEG: per-channel log band powers (delta .. gamma, bands above Nyquist dropped) are the node
      features of a graph over the EEG channels; :class:`DenseGraphConv` (learnable dense
      adjacency, densely connected layers) gives one token per channel;
    - visual: the configured face encoder's feature map as tokens;
    - both projected to ``model.d`` (32) and fused by :class:`JointCrossAttention`; the attended
      sequences are mean-pooled, concatenated and classified by the configured head.

    The configured EEG encoder (``encoders.eeg``) is not used (the graph needs per-channel
    features; only the EEG input shape and sampling rate are read). Simplifications: band powers
    from one FFT of the 4 s segment instead of DE over sub-windows; ``model.gcn_layers`` (2)
    layers of growth ``model.growth`` (16).
    """

    def __init__(self, spec: Mapping, where: str = "models"):
        super().__init__(spec, where)
        c = _model_cfg(spec, where, {"d": 32, "gcn_layers": 2, "growth": 16})
        info = (spec.get("inputs") or {}).get(EEG) or {}
        shape = info.get("shape")
        if not isinstance(shape, (list, tuple)) or len(shape) != 2:
            raise ConfigError(f"inputs.{EEG}.shape: must be (channels, samples), got {shape!r}")
        fs = info.get("sampling_rate") or ((spec.get("encoders") or {}).get(EEG) or {}).get("sampling_rate")
        if not fs:
            raise ConfigError(f"inputs.{EEG}.sampling_rate: dgc_jca needs the EEG sampling rate")
        self.fs = float(fs)
        nyq = self.fs / 2
        self.bands = tuple((lo, min(hi, nyq + 1e-9)) for lo, hi in EEG_BANDS if lo < nyq)
        n_ch = int(shape[0])
        self.gcn = DenseGraphConv(n_ch, len(self.bands), c["growth"], c["gcn_layers"])
        self.face = _encoder(spec, VISUAL, where)
        self.proj = nn.ModuleDict({EEG: nn.Linear(self.gcn.out_dim, c["d"]),
                                   VISUAL: nn.Linear(self._face_channels(), c["d"])})
        self.bn = nn.BatchNorm1d(len(self.bands))
        self.jca = JointCrossAttention(c["d"])
        self.head = _head(2 * c["d"], spec, self.n_outputs, where)

    def _face_channels(self) -> int:
        info = self.spec["inputs"][VISUAL]
        with torch.no_grad():
            was = self.face.training
            self.face.eval()
            _, hint = self.face(torch.zeros(1, *info["shape"], dtype=torch.uint8))
            self.face.train(was)
        return int(hint.shape[1])

    def forward(self, batch):
        eeg = _get(batch, EEG, self.modalities)
        bp = band_powers(eeg, self.fs, self.bands)  # (B, C, nb)
        bp = self.bn(bp.transpose(1, 2)).transpose(1, 2)
        nodes = self.gcn(bp)  # (B, C, out)
        zf, hint_v = self.face(_get(batch, VISUAL, self.modalities))
        xs = {EEG: self.proj[EEG](nodes), VISUAL: self.proj[VISUAL](tokens(hint_v))}
        att = self.jca(xs)
        pv, pe = att[VISUAL].mean(dim=1), att[EEG].mean(dim=1)
        fused = torch.cat([pv, pe], dim=1)
        logits, emb = _classify(self.head, fused)
        return Output(logits, {VISUAL: pv, EEG: pe, "fused": fused, "embedding": emb, "hint": hint_v,
                               f"hint_{VISUAL}": hint_v, f"hint_{EEG}": nodes.transpose(1, 2)})


ARCHITECTURES = {"dgc_jca": DGCJCANet}
