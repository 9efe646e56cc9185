"""Encoders by name, and the builders that turn a JSON-able spec into a model.

An encoder is configured by a dict such as ``{"name": "tsception", "num_T": 15}`` (its config
keys, with defaults in :data:`ENCODER_DEFAULTS`) and by what the data say about the modality
(``input_info``: ``shape`` without the batch axis, ``sampling_rate``, ``channel_names``). Every
unknown name, unknown key or bad value raises :class:`ConfigError` naming the key, e.g.
``models.eeg.num_T: must be a positive integer``.

Encoders (all return ``(feat (B, out_dim), hint (B, C, ...))`` and have ``out_dim``):

================  ==========================================  ================================
name              input (without batch axis)                   config keys (default)
================  ==========================================  ================================
``tsception``     EEG ``(C, T)``                               num_T (15), num_S (15),
                                                               hidden (null), dropout (0.5),
                                                               reorder ("auto"), midline ("drop")
``eegnet``        EEG ``(C, T)``                               F1 (8), D (2), F2 (null = F1*D),
                                                               kernel_length (null = fs/2),
                                                               sep_kernel_length (null = fs/8),
                                                               dropout (0.5)
``timm``          face ``(F, 3, H, W)``                        arch ("test_vit"), img_size, hint_stage
                                                               (null = H), pretrained_path (null),
                                                               pretrained (false: timm's hub
                                                               weights), allow_random_init (false;
                                                               see cmkd.models.visual), frozen
                                                               (false), frozen_hidden (256; see
                                                               cmkd.models.visual_frozen)
``eog_cnn``       EOG ``(2, T)``                               width (16), depth (3),
                                                               kernel_size (7, odd),
                                                               dropout (0.25)
``eye_mlp``       eye features ``(31,)``                       hidden ([64, 32]), dropout (0.25)
================  ==========================================  ================================

TSception's ``reorder``: ``"auto"`` puts the channels in hemisphere order (left channels, then
their mirror partners; see :func:`cmkd.models.tsception.hemisphere_order`) when channel names are
known and keeps the input order otherwise; ``true`` requires names; ``false`` keeps the input
order. ``midline``: ``"drop"`` (the paper's 28 DEAP channels) or ``"both"`` (midline channels
appended to both hemisphere halves). Names that are not 10-20 names are an error under
``"auto"``/``true``.

The EEG encoders also accept ``n_channels``, ``n_samples``, ``sampling_rate`` and
``channel_names`` as config keys; the data's values are used when they are absent, and a config
value that disagrees with the data is an error.
"""
from __future__ import annotations

import copy
import importlib
import os
from typing import Any, Callable, Mapping

from torch import nn

from cmkd.errors import ConfigError
from cmkd.models.value_checks import _is_int, pos_int, pos_number, probability  # noqa: F401 (the plugins use them)
from cmkd.models.eegnet import EEGNetEncoder
from cmkd.models.eog import EOGCNNEncoder
from cmkd.models.eye import EyeMLPEncoder
from cmkd.models.fusion import FUSIONS, MultiModalNet  # noqa: F401 (FUSIONS: the fusions a spec may name)
from cmkd.models.tsception import MIDLINE_MODES, TSceptionEncoder, hemisphere_order
from cmkd.models.visual import DEFAULT_ARCH, TimmFrameEncoder, import_timm
from cmkd.models.visual_frozen import FrozenFeatureHead
from cmkd.params import defaults_of, params_from_literals, resolve

_EEG_INPUT_PARAMS = {
    "n_channels": {"default": None, "kind": "int", "lo": 1, "nullable": True, "doc": "EEG channels (default: the data's)"},
    "n_samples": {"default": None, "kind": "int", "lo": 1, "nullable": True, "doc": "samples per segment (default: the data's)"},
    "sampling_rate": {"default": None, "lo": 0, "lo_open": True, "nullable": True, "doc": "Hz (default: the data's)"},
    "channel_names": {"default": None, "kind": "any", "doc": "channel names (default: the data's)"},
}
_DROPOUT = {"default": 0.5, "lo": 0, "hi": 1, "hi_open": True, "doc": "dropout rate"}

#: every encoder's parameters (``encoders.<modality>``: ``name`` plus these), declared as
#: cmkd.params.Param literals; read without importing this module by the config check and the
#: listing (cmkd.feasibility.encoder_params)
ENCODER_PARAMS: dict[str, dict[str, Any]] = {
    "tsception": {"num_T": {"default": 15, "kind": "int", "lo": 1, "doc": "temporal kernels (Ding et al. 2022 TSception)"},
                  "num_S": {"default": 15, "kind": "int", "lo": 1, "doc": "spatial kernels"},
                  "hidden": {"default": None, "kind": "int", "lo": 1, "nullable": True, "doc": "hidden units (null: none)"},
                  "dropout": _DROPOUT,
                  "reorder": {"default": "auto", "kind": "any", "doc": "'auto', true or false: order channels by hemisphere"},
                  "midline": {"default": "drop", "kind": "choice", "choices": list(MIDLINE_MODES), "doc": "midline channels"},
                  **_EEG_INPUT_PARAMS},
    "eegnet": {"F1": {"default": 8, "kind": "int", "lo": 1, "doc": "temporal filters (Lawhern et al. 2018 EEGNet)"},
               "D": {"default": 2, "kind": "int", "lo": 1, "doc": "depth multiplier"},
               "F2": {"default": None, "kind": "int", "lo": 1, "nullable": True, "doc": "pointwise filters (null: F1 * D)"},
               "kernel_length": {"default": None, "kind": "int", "lo": 1, "nullable": True, "doc": "temporal kernel (null: half a second)"},
               "sep_kernel_length": {"default": None, "kind": "int", "lo": 1, "nullable": True, "doc": "separable kernel (null: from the rate)"},
               "dropout": _DROPOUT, **_EEG_INPUT_PARAMS},
    "timm": {"arch": {"default": DEFAULT_ARCH, "kind": "str", "doc": "a timm model name"},
             "img_size": {"default": None, "kind": "any", "doc": "input size (an integer or [h, w]; null: the model's)"},
             "pretrained_path": {"default": None, "kind": "str", "nullable": True, "doc": "a local weights file"},
             "hint_stage": {"default": None, "kind": "int", "nullable": True, "doc": "stage whose features are the hint (negative from the end)"},
             "pretrained": {"default": False, "kind": "bool", "doc": "timm's ImageNet weights"},
             "allow_random_init": {"default": False, "kind": "bool", "doc": "train from scratch on purpose on real data"},
             "frozen": {"default": False, "kind": "bool",
                        "doc": "features extracted once per frame by the pretrained backbone and cached; only a small head trains (CDGKD's authors' setting)"},
             "frozen_hidden": {"default": 256, "kind": "int", "lo": 1, "doc": "width of the head on the frozen features (its per-frame map is the hint)"}},
    "eog_cnn": {"width": {"default": 16, "kind": "int", "lo": 1, "doc": "channels of the convolutions"},
                "depth": {"default": 3, "kind": "int", "lo": 1, "doc": "convolution blocks"},
                "kernel_size": {"default": 7, "kind": "int", "lo": 1, "doc": "kernel length (odd)"},
                "dropout": {"default": 0.25, "lo": 0, "hi": 1, "hi_open": True, "doc": "dropout rate"}},
    "eye_mlp": {"hidden": {"default": [64, 32], "kind": "any", "doc": "hidden layer sizes"},
                "dropout": {"default": 0.25, "lo": 0, "hi": 1, "hi_open": True, "doc": "dropout rate"}},
}
ENCODER_DEFAULTS: dict[str, dict[str, Any]] = {
    name: defaults_of(params_from_literals(p, f"encoders.{name}")) for name, p in ENCODER_PARAMS.items()}
HEAD_DEFAULTS: dict[str, Any] = {"hidden": 64, "dropout": 0.5}


def _merge(name: str, cfg: Mapping | None, where: str) -> dict:
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{where}: must be a mapping of encoder settings, got {cfg!r}")
    defaults = ENCODER_DEFAULTS[name]
    out = copy.deepcopy(defaults)
    for key, value in cfg.items():
        if key == "name":
            if value != name:
                raise ConfigError(f"{where}.name: {value!r} disagrees with encoder {name!r}")
            continue
        if key not in defaults:
            raise ConfigError(f"{where}.{key}: unknown key for encoder {name!r} "
                              f"(known: {sorted(defaults)})")
        out[key] = value
    return out


def _shape(info: Mapping, ndim: int, where: str, what: str) -> list[int]:
    shape = info.get("shape")
    if (not isinstance(shape, (list, tuple)) or len(shape) != ndim
            or not all(_is_int(s) and s > 0 for s in shape)):
        raise ConfigError(f"{where}.shape: must be {ndim} positive integers ({what}), got {shape!r}")
    return [int(s) for s in shape]


def _from_data(c: dict, key: str, data_value, where: str, info_where: str):
    """Take ``key`` from the data; a config value must agree with it."""
    if c[key] is None:
        return data_value
    if data_value is not None and c[key] != data_value:
        raise ConfigError(f"{where}.{key}: {c[key]!r} disagrees with the data ({info_where}: "
                          f"{data_value!r})")
    return c[key]


def _eeg_input(c: dict, info: Mapping, where: str, info_where: str) -> tuple:
    shape = info.get("shape")
    data_c, data_t = (_shape(info, 2, info_where, "channels, samples") if shape is not None
                      else (None, None))
    n_ch = pos_int(_from_data(c, "n_channels", data_c, where, f"{info_where}.shape"),
                   f"{where}.n_channels")
    n_t = pos_int(_from_data(c, "n_samples", data_t, where, f"{info_where}.shape"),
                  f"{where}.n_samples")
    fs = _from_data(c, "sampling_rate", info.get("sampling_rate"), where,
                    f"{info_where}.sampling_rate")
    fs = pos_number(fs, f"{where}.sampling_rate")
    data_names = info.get("channel_names")
    names_key = f"{where}.channel_names" if c["channel_names"] is not None \
        else f"{info_where}.channel_names"
    if data_names is not None and not isinstance(data_names, (list, tuple)):
        raise ConfigError(f"{info_where}.channel_names: must be a list of names, got {data_names!r}")
    names = _from_data(c, "channel_names", list(data_names) if data_names else None,
                       where, f"{info_where}.channel_names")
    if names is not None:
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{names_key}: must be a list of names, got {names!r}")
        if len(names) != n_ch:
            raise ConfigError(f"{names_key}: {len(names)} names for {n_ch} channels")
    return n_ch, n_t, fs, names, names_key


def _built(where: str, factory: Callable[[], nn.Module]) -> nn.Module:
    """Run a constructor; its ValueError (an impossible size) becomes a ConfigError."""
    try:
        return factory()
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None


# ------------------------------------------------------------------------------ builders
def _build_tsception(cfg, info, where, info_where):
    c = _merge("tsception", cfg, where)
    n_ch, n_t, fs, names, names_key = _eeg_input(c, info, where, info_where)
    num_T = pos_int(c["num_T"], f"{where}.num_T")
    num_S = pos_int(c["num_S"], f"{where}.num_S")
    hidden = pos_int(c["hidden"], f"{where}.hidden", allow_none=True) if c["hidden"] else None
    dropout = probability(c["dropout"], f"{where}.dropout")
    reorder, midline = c["reorder"], c["midline"]
    if reorder not in ("auto", True, False):
        raise ConfigError(f"{where}.reorder: must be 'auto', true or false, got {reorder!r}")
    if midline not in MIDLINE_MODES:
        raise ConfigError(f"{where}.midline: must be one of {list(MIDLINE_MODES)}, got {midline!r}")
    order = None
    if reorder is True and names is None:
        raise ConfigError(f"{where}.reorder: true needs channel names ({where}.channel_names or "
                          f"{info_where}.channel_names)")
    if reorder in ("auto", True) and names is not None:
        order = hemisphere_order(names, midline, where=names_key)
    return _built(where, lambda: TSceptionEncoder(
        n_ch, n_t, fs, num_T=num_T, num_S=num_S, channel_order=order, hidden=hidden,
        dropout=dropout))


def _build_eegnet(cfg, info, where, info_where):
    c = _merge("eegnet", cfg, where)
    n_ch, n_t, fs, _, _ = _eeg_input(c, info, where, info_where)
    return _built(where, lambda: EEGNetEncoder(
        n_ch, n_t, fs,
        F1=pos_int(c["F1"], f"{where}.F1"), D=pos_int(c["D"], f"{where}.D"),
        F2=pos_int(c["F2"], f"{where}.F2", allow_none=True),
        kernel_length=pos_int(c["kernel_length"], f"{where}.kernel_length", allow_none=True),
        sep_kernel_length=pos_int(c["sep_kernel_length"], f"{where}.sep_kernel_length",
                                  allow_none=True),
        dropout=probability(c["dropout"], f"{where}.dropout")))


def _build_frozen_head(c, info, where, info_where):
    """``frozen: true``: the head on the cached frame features the training job put in place of
    the frames (``inputs.face.features`` names how they were extracted; cmkd.run.frame_features)."""
    if c["hint_stage"] is not None:
        raise ConfigError(f"{where}.hint_stage: {c['hint_stage']!r} names a backbone stage, but with {where}.frozen: true "
                          "the backbone's maps are cached constants; the hint is the frozen head's per-frame map "
                          "(cmkd.models.visual_frozen): set hint_stage: null")
    feats = info.get("features")
    if not isinstance(feats, Mapping) or info.get("shape") is None or len(info["shape"]) != 2:
        raise ConfigError(f"{where}.frozen: true reads the cached frame features (F, D) that the training job extracts "
                          f"(cmkd.run.frame_features), but {info_where} describes {info.get('shape')!r}, not features")
    if feats.get("arch") != c["arch"]:
        raise ConfigError(f"{where}.arch: {c['arch']!r}, but the cached features of {info_where} were extracted with "
                          f"{feats.get('arch')!r}")
    _, dim = _shape(info, 2, info_where, "frames, feature size")
    hidden = pos_int(c["frozen_hidden"], f"{where}.frozen_hidden")
    return _built(where, lambda: FrozenFeatureHead(dim, hidden, provenance=dict(feats)))


def _build_timm(cfg, info, where, info_where):
    c = _merge("timm", cfg, where)
    if not isinstance(c["frozen"], bool):
        raise ConfigError(f"{where}.frozen: must be true or false, got {c['frozen']!r}")
    if c["frozen"]:
        return _build_frozen_head(c, info, where, info_where)
    _, _, _, h, w = [None] + _shape(info, 4, info_where, "frames, 3, height, width")
    arch = c["arch"]
    if not isinstance(arch, str) or not arch:
        raise ConfigError(f"{where}.arch: must be a timm model name, got {arch!r}")
    img = c["img_size"]
    if img is None:
        img_size = (h, w)
    elif isinstance(img, (list, tuple)) and len(img) == 2:
        img_size = (pos_int(img[0], f"{where}.img_size"), pos_int(img[1], f"{where}.img_size"))
    else:
        img_size = (pos_int(img, f"{where}.img_size"),) * 2
    path = c["pretrained_path"]
    if path is not None:
        if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
            raise ConfigError(f"{where}.pretrained_path: no such weights file: {path!r}")
        path = os.fspath(path)

    if not import_timm().is_model(arch):
        raise ConfigError(f"{where}.arch: unknown timm model {arch!r}")
    stage = c["hint_stage"]
    if stage is not None and (isinstance(stage, bool) or not isinstance(stage, int)):
        raise ConfigError(f"{where}.hint_stage: must be an integer (stage index; negative from the end) or null, got {stage!r}")
    for key in ("pretrained", "allow_random_init"):
        if not isinstance(c[key], bool):
            raise ConfigError(f"{where}.{key}: must be true or false, got {c[key]!r}")
    if path is not None and c["pretrained"]:
        raise ConfigError(f"{where}.pretrained: set either pretrained (timm's hub weights) or pretrained_path (a local file), not both")
    return _built(where, lambda: TimmFrameEncoder(arch, img_size, path, hint_stage=stage, pretrained=c["pretrained"]))


def _build_eog_cnn(cfg, info, where, info_where):
    c = _merge("eog_cnn", cfg, where)
    n_ch, n_t = _shape(info, 2, info_where, "channels, samples")
    kernel_size = pos_int(c["kernel_size"], f"{where}.kernel_size")
    if kernel_size % 2 != 1:
        raise ConfigError(f"{where}.kernel_size: must be odd (length-preserving), got {kernel_size}")
    return _built(where, lambda: EOGCNNEncoder(
        n_ch, n_t, width=pos_int(c["width"], f"{where}.width"),
        depth=pos_int(c["depth"], f"{where}.depth"), kernel_size=kernel_size,
        dropout=probability(c["dropout"], f"{where}.dropout")))


def _build_eye_mlp(cfg, info, where, info_where):
    c = _merge("eye_mlp", cfg, where)
    (n_feat,) = _shape(info, 1, info_where, "features")
    hidden = c["hidden"]
    if _is_int(hidden):
        hidden = [hidden]
    if not isinstance(hidden, (list, tuple)) or not hidden:
        raise ConfigError(f"{where}.hidden: must be a non-empty list of positive integers, "
                          f"got {hidden!r}")
    hidden = [pos_int(h, f"{where}.hidden") for h in hidden]
    return _built(where, lambda: EyeMLPEncoder(
        n_feat, hidden, dropout=probability(c["dropout"], f"{where}.dropout")))


ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "tsception": _build_tsception,
    "eegnet": _build_eegnet,
    "timm": _build_timm,
    "eog_cnn": _build_eog_cnn,
    "eye_mlp": _build_eye_mlp,
}


#: modules that contribute more encoders (a dict ``ENCODERS`` of builders with the signature of
#: the ones above, and their parameters as ``ENCODER_PARAMS`` Param literals) and whole architectures (a dict ``ARCHITECTURES`` of
#: ``builder(spec, where) -> nn.Module`` returning :class:`cmkd.models.base.Output`). They are
#: imported on first use only.
EXTRA_MODULES = (
    "cmkd.models.eeg_convnets",       # ShallowConvNet, DeepConvNet (eye <-> EEG track)
    "cmkd.models.cnn_svm",            # CDGKD Table 3 teachers (cmkd.models.face_eeg): CNN+SVM,
    "cmkd.models.cnn_lstm",           # CNN+LSTM,
    "cmkd.models.dgc_jca",            # DGC+JCA,
    "cmkd.models.emotionkd_teacher",  # EmotionKD;
    "cmkd.models.ambokd_net",         # and the AMBOKD network
    "cmkd.models.mkd",                # MKD dual-stream transformer teacher and EOG student
    "cmkd.models.cgan_net",           # the CGAN baseline's EOG student (MKD Table 1)
    "cmkd.models.seed_features",      # encoders of pre-computed features (SEED-IV differential entropy)
)
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}
#: the architecture of a spec without ``architecture``: :class:`cmkd.models.fusion.MultiModalNet`
#: (registered below, with the encoders and head of this registry)
DEFAULT_ARCHITECTURE = "multimodal"
_extras_loaded = False


def _load_extras() -> None:
    global _extras_loaded
    if _extras_loaded:
        return

    for mod_name in EXTRA_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as e:  # a listed module must load: a silent skip would hide its encoders
            raise ImportError(f"cmkd.models.registry.EXTRA_MODULES lists {mod_name!r}, which cannot be imported: {e}") from e
        ENCODERS.update(getattr(mod, "ENCODERS", {}))
        if hasattr(mod, "ENCODER_DEFAULTS"):  # untyped: the check before the DAG could not read its values
            raise ImportError(f"{mod_name}: declare the encoders' parameters as ENCODER_PARAMS (Param literals), "
                              "not ENCODER_DEFAULTS")
        for name, decl in getattr(mod, "ENCODER_PARAMS", {}).items():
            ENCODER_PARAMS[name] = decl
            ENCODER_DEFAULTS[name] = defaults_of(params_from_literals(decl, f"encoders.{name}"))
        ARCHITECTURES.update(getattr(mod, "ARCHITECTURES", {}))
    _extras_loaded = True


def architecture(name: str) -> Callable[..., nn.Module]:
    """The builder (class) registered as architecture ``name`` (``architecture:`` of a method)."""
    _load_extras()
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture '{name}' (known: {', '.join(sorted(ARCHITECTURES))})")
    return ARCHITECTURES[name]


def build_encoder(name: str, cfg: Mapping | None, input_info: Mapping | None,
                  modality: str | None = None, where: str | None = None,
                  info_where: str | None = None) -> nn.Module:
    """Build encoder ``name`` from its config keys and the modality's ``input_info``.

    ``where`` / ``info_where`` prefix error messages; by default ``models.<modality>`` and
    ``inputs.<modality>`` (the encoder name stands in for a missing ``modality``).
    """
    _load_extras()
    where = where or f"models.{modality or name}"
    info_where = info_where or f"inputs.{modality or name}"
    if name not in ENCODERS:
        raise ConfigError(f"{where}.name: unknown encoder {name!r} (known: {sorted(ENCODERS)})")
    if input_info is None:
        input_info = {}
    if not isinstance(input_info, Mapping):
        raise ConfigError(f"{info_where}: must be a mapping (shape, sampling_rate, ...)")
    return ENCODERS[name](cfg, input_info, where, info_where)


def head_config(head: Mapping | None, where: str = "models.head") -> dict:
    """Validated head settings: ``hidden`` (0 = a single Linear) and ``dropout``."""
    if head is not None and not isinstance(head, Mapping):
        raise ConfigError(f"{where}: must be a mapping (hidden, dropout), got {head!r}")
    out = resolve(head, HEAD_DEFAULTS, where)
    out["hidden"] = pos_int(out["hidden"], f"{where}.hidden", minimum=0)
    out["dropout"] = probability(out["dropout"], f"{where}.dropout")
    return out


def _build_multimodal(spec: Mapping, where: str = "models") -> nn.Module:
    """The default architecture: encoders of this registry per modality, concatenation fusion, head."""
    return MultiModalNet(spec, where=where, build_encoder=build_encoder, head_config=head_config)


ARCHITECTURES[DEFAULT_ARCHITECTURE] = _build_multimodal


def build_model(spec: Mapping, where: str = "models"):
    """Build the network a spec describes: ``spec["architecture"]`` names a registered whole
    architecture (e.g. the MKD teacher); without it, a :class:`cmkd.models.fusion.MultiModalNet`."""
    _load_extras()
    arch = spec.get("architecture") or DEFAULT_ARCHITECTURE
    if arch not in ARCHITECTURES:
        raise ConfigError(f"{where}.architecture: unknown architecture {arch!r} (known: {sorted(ARCHITECTURES)})")
    return ARCHITECTURES[arch](spec, where)
