"""Multimodal (visual + EEG) teacher architectures of CDGKD Table 3, and the AMBOKD network.

Registered through :data:`cmkd.models.registry.EXTRA_MODULES` as whole architectures; a config
method entry selects one with ``architecture: <name>`` and tunes it with ``model: {...}``. Every
network reads ``batch["face"]`` (B, F, 3, H, W) and ``batch["eeg"]`` (B, C, T) and returns
:class:`cmkd.models.base.Output` with ``features`` ``face``, ``eeg`` (per-modality vectors),
``fused`` (the vector the classifier reads), ``embedding`` (the penultimate vector) and ``hint``.

All are small-scale re-implementations from the papers' descriptions (none of the four released
a PyTorch model for visual + EEG); every simplification is written in the class docstring.
The visual and EEG encoders are the configured ones (``encoders.face``, ``encoders.eeg``), so
that the baselines differ from the CDGKD teacher in fusion, not in backbone, except where the
paper's architecture needs another EEG representation (DGC+JCA: per-channel band powers).

Architectures (``architecture:`` name -> class):

- ``cnn_svm``   -> :class:`CNNSVMNet`   (Huang et al. 2019, decision-level fusion)
- ``cnn_lstm``  -> :class:`CNNLSTMNet`  (Saffaryazdi et al. 2022)
- ``dgc_jca``   -> :class:`DGCJCANet`   (Cheng et al. 2024, dense graph conv + joint cross-attention)
- ``emotionkd_teacher`` -> :class:`EmotionKDTeacherNet` (Liu et al. 2023, heterogeneity + IMF)
- ``ambokd``    -> :class:`AMBOKDNet`   (Li et al. 2024, visual, EEG and fusion branches)
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from cmkd.errors import ConfigError, DataError
from cmkd.params import resolve
from cmkd.models.base import Output

VISUAL, EEG = "face", "eeg"


# ------------------------------------------------------------------------------ helpers
def _model_cfg(spec: Mapping, where: str, defaults: dict) -> dict:
    out = resolve(spec.get("model"), defaults, f"{where}.model")
    for k, v in out.items():
        if isinstance(defaults[k], bool):
            if not isinstance(v, bool):
                raise ConfigError(f"{where}.model.{k}: must be true or false, got {v!r}")
        elif isinstance(defaults[k], int):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{where}.model.{k}: must be a positive integer, got {v!r}")
        elif isinstance(defaults[k], float):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
                raise ConfigError(f"{where}.model.{k}: must be a number in [0, 1), got {v!r}")
            out[k] = float(v)
    return out


def _check_modalities(spec: Mapping, where: str) -> None:
    mods = spec.get("modalities")
    if isinstance(mods, str):
        mods = [mods]
    if sorted(mods or []) != sorted([VISUAL, EEG]):
        raise ConfigError(f"{where}.modalities: this architecture takes exactly [face, eeg] (modalities: teacher "
                          f"on the face_eeg-to-face track), got {mods!r}")


def _encoder(spec: Mapping, mod: str, where: str) -> nn.Module:
    from cmkd.models import registry

    cfg = (spec.get("encoders") or {}).get(mod)
    if not isinstance(cfg, Mapping) or not isinstance(cfg.get("name"), str):
        raise ConfigError(f"{where}.{mod}.name: no encoder named for modality {mod!r}")
    info = (spec.get("inputs") or {}).get(mod)
    if info is None:
        raise ConfigError(f"inputs.{mod}: no input description (shape, ...) for modality {mod!r}")
    return registry.build_encoder(cfg["name"], cfg, info, where=f"{where}.{mod}", info_where=f"inputs.{mod}")


def _head(in_dim: int, spec: Mapping, n_outputs: int, where: str) -> nn.Sequential:
    from cmkd.models import registry

    h = registry.head_config(spec.get("head"), where=f"{where}.head")
    if h["hidden"]:
        return nn.Sequential(nn.Linear(in_dim, h["hidden"]), nn.ReLU(), nn.Dropout(h["dropout"]),
                             nn.Linear(h["hidden"], n_outputs))
    return nn.Sequential(nn.Dropout(h["dropout"]), nn.Linear(in_dim, n_outputs))


def _classify(head: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, embedding): the embedding is the head's hidden activation (or its input)."""
    if len(head) == 4:
        emb = head[1](head[0](x))
        return head[3](head[2](emb)), emb
    return head(x), x


def _n_outputs(spec: Mapping, where: str) -> int:
    from cmkd.models import registry

    return registry.pos_int(spec.get("n_outputs"), f"{where}.n_outputs")


def _get(batch: Mapping, mod: str, names) -> torch.Tensor:
    if mod not in batch:
        raise DataError(f"batch has no {mod!r} array; the model reads {list(names)}")
    return batch[mod]


def tokens(hint: torch.Tensor) -> torch.Tensor:
    """A feature map (B, C, ...) as a token sequence (B, L, C); a (B, C) vector is one token."""
    if hint.dim() == 2:
        return hint.unsqueeze(1)
    return hint.flatten(2).transpose(1, 2)


class _Base(nn.Module):
    def __init__(self, spec: Mapping, where: str):
        super().__init__()
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: the model spec must be a mapping")
        _check_modalities(spec, where)
        self.modalities = [VISUAL, EEG]
        self.n_outputs = _n_outputs(spec, where)
        self.spec = dict(spec)


# ------------------------------------------------------------------------------ CNN + SVM
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


# ------------------------------------------------------------------------------ CNN + LSTM
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
        if not hasattr(hv, "backbone"):
            raise ConfigError(f"{where}.{VISUAL}.name: cnn_lstm needs a frame encoder (timm) for the face")
        eeg_hint_ch = int(getattr(self.encoders[EEG], "hint_shape", (self.encoders[EEG].out_dim,))[0])
        self.lstm = nn.ModuleDict({
            VISUAL: nn.LSTM(int(hv.out_dim), c["lstm_hidden"], c["lstm_layers"], batch_first=True),
            EEG: nn.LSTM(eeg_hint_ch, c["lstm_hidden"], c["lstm_layers"], batch_first=True),
        })
        self.head = _head(2 * c["lstm_hidden"], spec, self.n_outputs, where)

    def _frames(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.encoders[VISUAL]
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


# ------------------------------------------------------------------------------ DGC + JCA
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


# ------------------------------------------------------------------------------ EmotionKD teacher
class CrossModalFusion(nn.Module):
    """One interactivity block of EmotionKD's IMF module: cross-attention between the two
    modalities' heterogeneity features of consecutive depths, both directions, summed.

    ``f(v_k, e_k, v_{k+1}, e_{k+1}) = pool(MHA(q=v_k, kv=e_{k+1})) + pool(MHA(q=e_k, kv=v_{k+1}))``."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.v2e = nn.MultiheadAttention(d, heads, batch_first=True)
        self.e2v = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm = nn.LayerNorm(d)

    def forward(self, v_k, e_k, v_next, e_next) -> torch.Tensor:
        a, _ = self.v2e(v_k, e_next, e_next, need_weights=False)
        b, _ = self.e2v(e_k, v_next, v_next, need_weights=False)
        return self.norm(a.mean(dim=1) + b.mean(dim=1))


class EmotionKDTeacherNet(_Base):
    """EmotionKD's multimodal teacher, EmotionNet-Teacher (Liu, Jia & Wang 2023, "EmotionKD: a
    cross-modal knowledge distillation framework for emotion recognition based on physiological
    signals", ACM MM, §3 and the released ``Buildmodel.get_MultiModal_model``), with the visual
    modality in place of GSR.

    - heterogeneity: per modality, a head (the configured encoder, its feature map as tokens,
      projected to ``model.d``) and a transformer feature extractor of 3 layers whose three
      outputs ``h_1, h_2, h_3`` are kept (the released code's depth features);
    - interactivity (IMF): ``att = IMF(e_1, v_1, e_2, v_2) + IMF(e_2, v_2, e_3, v_3)`` with
      :class:`CrossModalFusion` blocks (the released code sums two ``MultiModalFusion`` outputs);
    - the IMF feature ``fused`` is classified by the configured head; it is the intermediate
      feature the EmotionKD student matches (``features["fused"]``).

    Simplifications: the released ``MultiModalFusion`` layer's exact attention form is replaced
    by standard multi-head cross-attention (documented in :class:`CrossModalFusion`); ``d`` 32,
    ``heads`` 2 and 3 transformer layers at small scale.
    """

    def __init__(self, spec: Mapping, where: str = "models"):
        super().__init__(spec, where)
        c = _model_cfg(spec, where, {"d": 32, "heads": 2, "depth": 3})
        if c["d"] % c["heads"]:
            raise ConfigError(f"{where}.model.d: must be divisible by model.heads ({c['heads']}), got {c['d']}")
        if c["depth"] < 3:
            raise ConfigError(f"{where}.model.depth: must be >= 3 (IMF reads depths 1-3), got {c['depth']}")
        self.encoders = nn.ModuleDict({m: _encoder(spec, m, where) for m in self.modalities})
        self.proj = nn.ModuleDict({m: nn.Linear(self._hint_channels(m), c["d"]) for m in self.modalities})
        self.pos = nn.ParameterDict({m: nn.Parameter(torch.zeros(1, 64, c["d"])) for m in self.modalities})
        self.blocks = nn.ModuleDict({
            m: nn.ModuleList(nn.TransformerEncoderLayer(c["d"], c["heads"], 2 * c["d"], dropout=0.1, batch_first=True)
                             for _ in range(c["depth"]))
            for m in self.modalities})
        self.imf = nn.ModuleList([CrossModalFusion(c["d"], c["heads"]) for _ in range(2)])
        self.head = _head(c["d"], spec, self.n_outputs, where)

    def _hint_channels(self, m: str) -> int:
        info = self.spec["inputs"][m]
        dtype = torch.uint8 if m == VISUAL else torch.float32
        enc = self.encoders[m]
        with torch.no_grad():
            was = enc.training
            enc.eval()
            _, hint = enc(torch.zeros(2, *info["shape"], dtype=dtype))
            enc.train(was)
        if tokens(hint).shape[1] > 64:
            raise ConfigError(f"{self.spec.get('where', 'models')}.{m}: feature map of {tokens(hint).shape[1]} tokens "
                              "is longer than the 64 positions of the EmotionKD teacher")
        return int(hint.shape[1])

    def forward(self, batch):
        depth_feats, vecs, hints = {}, {}, {}
        for m in self.modalities:
            f, hint = self.encoders[m](_get(batch, m, self.modalities))
            hints[m] = hint
            x = self.proj[m](tokens(hint))
            x = x + self.pos[m][:, : x.shape[1]]
            outs = []
            for blk in self.blocks[m]:
                x = blk(x)
                outs.append(x)
            depth_feats[m] = outs[-3:]
            vecs[m] = outs[-1].mean(dim=1)
        v, e = depth_feats[VISUAL], depth_feats[EEG]
        fused = self.imf[0](e[0], v[0], e[1], v[1]) + self.imf[1](e[1], v[1], e[2], v[2])
        logits, emb = _classify(self.head, fused)
        return Output(logits, {VISUAL: vecs[VISUAL], EEG: vecs[EEG], "fused": fused, "embedding": emb,
                               "hint": hints[VISUAL], f"hint_{VISUAL}": hints[VISUAL], f"hint_{EEG}": hints[EEG]})


# ------------------------------------------------------------------------------ AMBOKD
class GradScale(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``holder[key]`` read *at backward
    time*, so a factor computed from this very forward's outputs (OGM-style gradient modulation)
    can be set between the forward and ``backward()``."""

    @staticmethod
    def forward(ctx, x, holder, key):
        ctx.holder, ctx.key = holder, key
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * float(ctx.holder[ctx.key]), None, None


class AMBOKDNet(_Base):
    """The three-branch network of AMBOKD (Li et al. 2024, "Adaptive modality balanced online
    knowledge distillation for brain-eye-computer based dim object detection", arXiv 2407.01894):
    a visual branch, an EEG branch, and a fusion branch that fuses the two modalities' features
    with multi-head attention ("establishing a new modality"); trained together online by
    :class:`cmkd.methods.ambokd.AMBOKD`.

    **The network's logits are the visual branch's only** (``features["logits_face"]`` is the same
    tensor): the model is evaluated and saved as the visual student of the face_eeg-to-face
    track. Without an ``eeg`` array in the batch, only the visual branch runs (deployment with
    video alone). With EEG, ``features`` also hold ``logits_eeg``, ``logits_fusion``.

    ``grad_scale`` (a dict modality -> factor, read at backward time, set by the method between
    forward and backward) scales the gradient reaching each encoder (the adaptive balancing of
    training gradients).
    """

    def __init__(self, spec: Mapping, where: str = "models"):
        super().__init__(spec, where)
        c = _model_cfg(spec, where, {"d": 32, "heads": 2})
        if c["d"] % c["heads"]:
            raise ConfigError(f"{where}.model.d: must be divisible by model.heads ({c['heads']}), got {c['d']}")
        self.encoders = nn.ModuleDict({m: _encoder(spec, m, where) for m in self.modalities})
        self.heads = nn.ModuleDict({m: _head(int(self.encoders[m].out_dim), spec, self.n_outputs, where)
                                    for m in self.modalities})
        self.proj = nn.ModuleDict({m: nn.Linear(int(self.encoders[m].out_dim), c["d"]) for m in self.modalities})
        self.mha = nn.MultiheadAttention(c["d"], c["heads"], batch_first=True)
        self.norm = nn.LayerNorm(c["d"])
        self.fusion_head = _head(c["d"], spec, self.n_outputs, where)
        self.grad_scale = {m: 1.0 for m in self.modalities}

    def forward(self, batch):
        zv, hint_v = self.encoders[VISUAL](_get(batch, VISUAL, self.modalities))
        zv_s = GradScale.apply(zv, self.grad_scale, VISUAL) if self.training else zv
        lv, emb = _classify(self.heads[VISUAL], zv_s)
        feats = {VISUAL: zv, "fused": zv, "embedding": emb, "hint": hint_v, f"hint_{VISUAL}": hint_v,
                 f"logits_{VISUAL}": lv}
        if EEG in batch:
            ze, hint_e = self.encoders[EEG](batch[EEG])
            ze_s = GradScale.apply(ze, self.grad_scale, EEG) if self.training else ze
            le, _ = _classify(self.heads[EEG], ze_s)
            toks = torch.stack([self.proj[VISUAL](zv_s), self.proj[EEG](ze_s)], dim=1)  # (B, 2, d)
            att, _ = self.mha(toks, toks, toks, need_weights=False)
            zf = self.norm(att + toks).mean(dim=1)
            lf, _ = _classify(self.fusion_head, zf)
            feats.update({EEG: ze, f"hint_{EEG}": hint_e, f"logits_{EEG}": le, "logits_fusion": lf, "fusion": zf})
        return Output(lv, feats)


ARCHITECTURES = {
    "cnn_svm": CNNSVMNet,
    "cnn_lstm": CNNLSTMNet,
    "dgc_jca": DGCJCANet,
    "emotionkd_teacher": EmotionKDTeacherNet,
    "ambokd": AMBOKDNet,
}
