"""Encoders, MultiModalNet, the registry and the torchvision shim."""
from __future__ import annotations

import os
import subprocess
import sys
import types

import pytest
import torch

from cmkd.errors import ConfigError, DataError
from cmkd.models import _torchvision_shim as shim
from cmkd.models.base import Output
from cmkd.models.eegnet import EEGNetEncoder
from cmkd.models.registry import ENCODER_DEFAULTS, ENCODERS, build_encoder, build_model
from cmkd.models.tsception import DEAP_CHANNELS, hemisphere_order

B = 4
EEG_INFO = {"shape": [32, 256], "sampling_rate": 64, "channel_names": list(DEAP_CHANNELS)}
FACE_INFO = {"shape": [2, 3, 32, 32]}
EOG_INFO = {"shape": [2, 256], "sampling_rate": 64}
EYE_INFO = {"shape": [31]}

# (encoder name, modality, input info, expected feat dim, expected hint shape without batch)
ENCODER_CASES = [
    # 32 DEAP channels -> 28 rows; time 256 @ 64 Hz: kernels 32/16/8 -> (225//8 + 241//8 +
    # 249//8) = 28 + 30 + 31 = 89, spatial pool 2 -> 44, fusion pool 4 -> 11
    ("tsception", "eeg", EEG_INFO, 15, (15, 11)),
    ("eegnet", "eeg", EEG_INFO, 16 * 8, (16, 8)),  # F2 * (256 // 32)
    ("timm", "face", FACE_INFO, 64, (64, 2, 2)),  # test_vit at 32 px: 2 x 2 patches of 16 px
    ("eog_cnn", "eog", EOG_INFO, 64, (64, 32)),  # 16 * 2**2 channels, 256 / 2**3 samples
    ("eye_mlp", "eye", EYE_INFO, 32, (64,)),
]


def _input(modality: str, info: dict, b: int = B, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (b, *info["shape"])
    if modality == "face":
        return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    return torch.randn(shape, generator=g)


def _spec(*modalities, encoders=None, head=None, n_outputs=2, inputs=None):
    default_enc = {"eeg": {"name": "tsception"}, "face": {"name": "timm", "img_size": 32},
                   "eog": {"name": "eog_cnn"}, "eye": {"name": "eye_mlp"}}
    default_enc.update(encoders or {})
    infos = {"eeg": EEG_INFO, "face": FACE_INFO, "eog": EOG_INFO, "eye": EYE_INFO}
    infos.update(inputs or {})
    return {"modalities": list(modalities),
            "encoders": {m: default_enc[m] for m in modalities},
            "inputs": {m: infos[m] for m in modalities},
            "head": head if head is not None else {"hidden": 64, "dropout": 0.5},
            "n_outputs": n_outputs}


def _n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- encoders
@pytest.mark.parametrize("name,modality,info,dim,hint_shape", ENCODER_CASES)
def test_encoder_shapes(name, modality, info, dim, hint_shape):
    enc = build_encoder(name, {}, info)
    assert enc.out_dim == dim
    feat, hint = enc(_input(modality, info))
    assert feat.shape == (B, dim)
    assert tuple(hint.shape) == (B, *hint_shape)
    assert torch.isfinite(feat).all() and torch.isfinite(hint).all()


def test_every_registered_encoder_is_tested():
    """The base encoders are tested here; encoders of EXTRA_MODULES are tested beside their methods."""
    import importlib

    from cmkd.models import registry

    registry._load_extras()
    extra = set()
    for mod in registry.EXTRA_MODULES:
        try:
            extra |= set(getattr(importlib.import_module(mod), "ENCODERS", {}))
        except ModuleNotFoundError:
            pass
    base = set(ENCODERS) - extra
    assert sorted(base) == sorted(c[0] for c in ENCODER_CASES) == sorted(set(ENCODER_DEFAULTS) - extra)


def test_tsception_paper_parameter_count():
    # Ding et al. 2022 on DEAP: 28 channels (32 minus Fz Cz Pz Oz), 4 s at 128 Hz = 512
    # samples, num_T = num_S = 15, hidden 32, 2 classes.
    T, S, C, H, K = 15, 15, 28, 32, 2
    k1, k2, k3 = int(0.5 * 128), int(0.25 * 128), int(0.125 * 128)  # 64, 32, 16
    temporal = (T * k1 + T) + (T * k2 + T) + (T * k3 + T)  # 975 + 495 + 255 = 1725
    bn_t = 2 * T  # 30
    spatial = (S * T * C + S) + (S * T * (C // 2) + S)  # 6315 + 3165 = 9480
    bn_s = 2 * S  # 30
    fusion = S * S * 3 + S  # 690
    bn_f = 2 * S  # 30
    encoder = temporal + bn_t + spatial + bn_s + fusion + bn_f
    assert encoder == 11985
    classifier = (S * H + H) + (H * K + K)  # 512 + 66 = 578
    assert encoder + classifier == 12563

    info = {"shape": [32, 512], "sampling_rate": 128, "channel_names": list(DEAP_CHANNELS)}
    net = build_model({"modalities": ["eeg"], "encoders": {"eeg": {"name": "tsception"}},
                       "inputs": {"eeg": info}, "head": {"hidden": 32, "dropout": 0.5},
                       "n_outputs": 2})
    assert net.encoders["eeg"].rows == 28
    assert _n_params(net.encoders["eeg"]) == encoder
    assert _n_params(net) == encoder + classifier
    out = net({"eeg": torch.randn(2, 32, 512)})
    # time: (449//8 + 481//8 + 497//8) = 56 + 60 + 62 = 178 -> 89 -> 22
    assert out.logits.shape == (2, 2) and out.features["hint"].shape == (2, 15, 22)


def test_tsception_hidden_projection_and_options():
    enc = build_encoder("tsception", {"hidden": 32, "dropout": 0.5, "num_T": 9, "num_S": 6},
                        EEG_INFO)
    assert enc.out_dim == 32
    feat, hint = enc(torch.randn(3, 32, 256))
    assert feat.shape == (3, 32) and hint.shape == (3, 6, 11)
    both = build_encoder("tsception", {"midline": "both"}, EEG_INFO)
    assert both.rows == 36
    plain = build_encoder("tsception", {"reorder": False}, EEG_INFO)
    assert plain.rows == 32 and plain.channel_order is None
    generic = dict(EEG_INFO, channel_names=[f"ch{i}" for i in range(32)])
    with pytest.raises(ConfigError, match=r"inputs\.eeg\.channel_names: channel 'ch0'"):
        build_encoder("tsception", {}, generic, modality="eeg")
    assert build_encoder("tsception", {"reorder": False}, generic).rows == 32


def test_hemisphere_order_deap():
    order = [DEAP_CHANNELS[i] for i in hemisphere_order(DEAP_CHANNELS)]
    left = ["Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3",
            "O1"]
    right = ["Fp2", "AF4", "F4", "F8", "FC6", "FC2", "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4",
             "O2"]
    assert order == left + right  # the paper's 28-channel order
    both = [DEAP_CHANNELS[i] for i in hemisphere_order(DEAP_CHANNELS, midline="both")]
    mid = ["Oz", "Pz", "Fz", "Cz"]  # midline channels in DEAP's file order
    assert both == left + mid + right + mid
    # case-insensitive names (SEED style), any input order
    shuffled = ["FP2", "CZ", "FP1", "T8", "T7"]
    assert [shuffled[i] for i in hemisphere_order(shuffled)] == ["FP1", "T7", "FP2", "T8"]


@pytest.mark.parametrize("names,culprit", [
    (["Fp1", "Fp2", "F3"], "'F3'"),  # no right partner
    (["Fp1", "Fp2", "F4"], "'F4'"),  # no left partner
    (["Fp1", "Fp2", "EXG1x"], "'EXG1x'"),  # not a 10-20 name
    (["Fp1", "Fp2", "Fp1"], "'Fp1'"),  # duplicate
    (["ch1", "ch2"], "'ch1'"),  # numbered, but not 10-20 names
])
def test_hemisphere_order_errors(names, culprit):
    with pytest.raises(ConfigError, match=culprit) as err:
        hemisphere_order(names)
    assert "channel_names" in str(err.value)


def test_tsception_reorder_is_applied_inside_the_model():
    torch.manual_seed(0)
    with_names = build_encoder("tsception", {}, EEG_INFO).eval()
    without = build_encoder("tsception", {}, {"shape": [28, 256], "sampling_rate": 64}).eval()
    without.load_state_dict(with_names.state_dict())
    x = torch.randn(2, 32, 256)
    idx = hemisphere_order(DEAP_CHANNELS)
    torch.testing.assert_close(with_names(x)[0], without(x[:, idx])[0])


def test_eegnet_parameter_count_and_max_norm():
    C, F1, D, F2, k = 32, 8, 2, 16, 32  # EEGNet-8,2 at 64 Hz: kernel fs/2 = 32, separable fs/8 = 8
    expected = (F1 * k) + 2 * F1 + (F1 * D * C) + 2 * F1 * D + (F1 * D * 8) + (F1 * D * F2) + 2 * F2
    enc = build_encoder("eegnet", {}, EEG_INFO)
    assert _n_params(enc) == expected == 256 + 16 + 512 + 32 + 128 + 256 + 32
    depthwise = enc.block1[3]
    with torch.no_grad():
        depthwise.weight.mul_(10.0)
    enc(torch.randn(2, 32, 256))
    norms = depthwise.weight.flatten(1).norm(dim=1)
    assert (norms <= 1.0 + 1e-5).all()
    # kernel_length 64 at 128 Hz, Keras-style "same" padding keeps the time axis
    enc128 = EEGNetEncoder(32, 512, 128)
    assert enc128.block1[1].kernel_size == (1, 64) and enc128.out_dim == 16 * 16
    assert enc128(torch.randn(2, 32, 512))[1].shape == (2, 16, 16)


def test_eegnet_batch_norm_as_the_reference_implementation():
    """EEGModels.py (Keras BatchNormalization: epsilon 1e-3, momentum 0.99 = keep 99 % of the old
    statistic) is PyTorch's eps 1e-3, momentum 0.01: one training batch moves the running mean
    from 0 to 0.01 x the batch mean, and eval mode divides by sqrt(var + 1e-3)."""
    enc = build_encoder("eegnet", {}, EEG_INFO)
    bns = [m for m in enc.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 3 and all(b.eps == 1e-3 and b.momentum == 0.01 for b in bns)
    bn = enc.block1[2]                 # after the temporal conv
    x = enc.block1[1](enc.block1[0](torch.randn(4, 32, 256).unsqueeze(1))).detach()
    bn.train()
    bn(x)
    batch_mean = x.mean(dim=(0, 2, 3))
    torch.testing.assert_close(bn.running_mean, 0.01 * batch_mean)
    batch_var = x.var(dim=(0, 2, 3), unbiased=True)
    torch.testing.assert_close(bn.running_var, 0.99 * 1.0 + 0.01 * batch_var)
    bn.eval()
    want = (x - bn.running_mean[None, :, None, None]) / torch.sqrt(bn.running_var[None, :, None, None] + 1e-3)
    torch.testing.assert_close(bn(x), want * bn.weight[None, :, None, None] + bn.bias[None, :, None, None])


def test_visual_uint8_and_float_agree_and_resize():
    torch.manual_seed(0)
    enc = build_encoder("timm", {"img_size": 32}, {"shape": [2, 3, 40, 40]}).eval()
    x = torch.randint(0, 256, (2, 2, 3, 40, 40), dtype=torch.uint8)
    f_u8, h_u8 = enc(x)
    f_fl, _ = enc(x.float() / 255.0)
    torch.testing.assert_close(f_u8, f_fl)
    assert f_u8.shape == (2, 64) and h_u8.shape == (2, 64, 2, 2)
    # frames are averaged: a clip of two identical frames equals a one-frame clip
    one = enc(x[:, :1])[0]
    two = enc(x[:, :1].expand(-1, 2, -1, -1, -1).contiguous())[0]
    torch.testing.assert_close(one, two)


def test_visual_convolutional_backbone_hint_is_channels_first():
    enc = build_encoder("timm", {"arch": "test_convnext3"}, {"shape": [1, 3, 64, 64]})
    feat, hint = enc(torch.randint(0, 256, (2, 1, 3, 64, 64), dtype=torch.uint8))
    assert feat.shape == (2, enc.out_dim) and hint.shape == (2, 128, 2, 2)


def test_visual_hint_stage_is_a_middle_feature_map():
    """hint_stage = k takes stage k of forward_intermediates as the hint; the pooled feature is
    the same as without it (one pass, same final map)."""
    x = torch.randint(0, 256, (3, 2, 3, 32, 32), dtype=torch.uint8)
    torch.manual_seed(0)
    last = build_encoder("timm", {"arch": "test_convnext3"}, {"shape": [2, 3, 32, 32]}).eval()
    torch.manual_seed(0)
    mid = build_encoder("timm", {"arch": "test_convnext3", "hint_stage": 1}, {"shape": [2, 3, 32, 32]}).eval()
    with torch.no_grad():
        f_last, h_last = last(x)
        f_mid, h_mid = mid(x)
        frames = mid._prepare(x.reshape(6, 3, 32, 32))
        ref = mid.backbone.stages[1](mid.backbone.stages[0](mid.backbone.stem(frames)))
    assert tuple(h_last.shape) == (3, 128, 1, 1)  # at 32 px the last map is a single position
    assert tuple(h_mid.shape) == (3, 64, 4, 4)
    torch.testing.assert_close(h_mid, ref.reshape(3, 2, 64, 4, 4).mean(1))
    torch.testing.assert_close(f_mid, f_last)
    with pytest.raises(ConfigError, match="hint_stage"):
        build_encoder("timm", {"arch": "test_convnext3", "hint_stage": 9}, {"shape": [2, 3, 32, 32]})
    with pytest.raises(ConfigError, match="hint_stage"):
        build_encoder("timm", {"arch": "test_convnext3", "hint_stage": "mid"}, {"shape": [2, 3, 32, 32]})


def test_visual_loads_local_weights(tmp_path):
    from cmkd.models.visual import import_timm

    timm = import_timm()
    torch.manual_seed(1)
    src = timm.create_model("test_vit", pretrained=False, num_classes=3, img_size=32)
    path = tmp_path / "face.pth"
    torch.save(src.state_dict(), path)
    torch.manual_seed(2)
    enc = build_encoder("timm", {"pretrained_path": str(path)}, FACE_INFO)
    for key, value in enc.backbone.state_dict().items():
        assert torch.equal(value, src.state_dict()[key]), key
    with pytest.raises(ConfigError, match=r"models\.face\.pretrained_path"):
        build_encoder("timm", {"pretrained_path": str(tmp_path / "missing.pth")}, FACE_INFO,
                      modality="face")
    with pytest.raises(ConfigError, match=r"models\.face\.arch"):
        build_encoder("timm", {"arch": "no_such_net"}, FACE_INFO, modality="face")


# ----------------------------------------------------------------------------- MultiModalNet
def test_unimodal_network():
    net = build_model(_spec("eeg"))
    out = net({"eeg": torch.randn(B, 32, 256), "label": torch.zeros(B)})
    assert isinstance(out, Output)
    assert out.logits.shape == (B, 2)
    f = out.features
    assert set(f) == {"embedding", "fused", "eeg", "hint", "hint_eeg"}
    assert f["embedding"].shape == (B, 64) and f["fused"].shape == (B, 15)
    assert f["hint"] is f["hint_eeg"]


def test_two_modalities_concat_and_regression():
    net = build_model(_spec("face", "eeg", n_outputs=1))
    batch = {"face": _input("face", FACE_INFO), "eeg": _input("eeg", EEG_INFO)}
    out = net.eval()(batch)
    f = out.features
    assert out.logits.shape == (B, 1)
    assert f["fused"].shape == (B, 64 + 15)
    torch.testing.assert_close(f["fused"], torch.cat([f["face"], f["eeg"]], dim=1))
    assert f["hint"] is f["hint_face"] and f["hint_eeg"].shape == (B, 15, 11)
    logits, emb = net.classify(f["fused"])
    torch.testing.assert_close(logits, out.logits)
    torch.testing.assert_close(emb, f["embedding"])
    with pytest.raises(DataError, match="'eeg'"):
        net({"face": batch["face"]})


def test_head_without_hidden_layer():
    net = build_model(_spec("eye", "eog", head={"hidden": 0, "dropout": 0.0}))
    out = net({"eye": torch.randn(B, 31), "eog": torch.randn(B, 2, 256)})
    assert out.features["embedding"].shape == (B, 32 + 64)
    assert out.logits.shape == (B, 2)


@pytest.mark.parametrize("modalities", [("eeg",), ("face",), ("eog",), ("eye",), ("face", "eeg"),
                                        ("eeg", "eog")])
def test_deterministic_init_and_finite_grads(modalities):
    spec = _spec(*modalities)
    torch.manual_seed(123)
    a = build_model(spec)
    torch.manual_seed(123)
    b = build_model(spec)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    batch = {m: _input(m, spec["inputs"][m], b=8) for m in modalities}
    torch.manual_seed(0)
    out_a = a(batch)
    torch.manual_seed(0)
    out_b = b(batch)
    assert torch.equal(out_a.logits, out_b.logits)  # same dropout masks too
    loss = torch.nn.functional.cross_entropy(out_a.logits, torch.arange(8) % 2)
    loss = loss + sum(v.float().pow(2).mean() for v in out_a.features.values()) * 1e-3
    loss.backward()
    for name, p in a.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


# ----------------------------------------------------------------------------- config errors
@pytest.mark.parametrize("change,key", [
    ({"encoders": {"eeg": {"name": "tsception", "num_T": 0}}}, r"models\.eeg\.num_T"),
    ({"encoders": {"eeg": {"name": "tsception", "num_T": 2.5}}}, r"models\.eeg\.num_T"),
    ({"encoders": {"eeg": {"name": "tsception", "num_t": 15}}}, r"models\.eeg\.num_t"),
    ({"encoders": {"eeg": {"name": "tsception", "dropout": 1.0}}}, r"models\.eeg\.dropout"),
    ({"encoders": {"eeg": {"name": "tsception", "midline": "keep"}}}, r"models\.eeg\.midline"),
    ({"encoders": {"eeg": {"name": "tsception", "n_samples": 512}}}, r"models\.eeg\.n_samples"),
    ({"encoders": {"eeg": {"name": "tsceptoin"}}}, r"models\.eeg\.name"),
    ({"encoders": {"eeg": {"num_T": 15}}}, r"models\.eeg\.name"),
    ({"encoders": {"eeg": {"name": "eegnet", "F1": -1}}}, r"models\.eeg\.F1"),
    ({"encoders": {"eeg": {"name": "eegnet", "num_T": 15}}}, r"models\.eeg\.num_T"),
    ({"head": {"hidden": 64, "dropuot": 0.5}}, r"models\.head\.dropuot"),
    ({"head": {"hidden": -1}}, r"models\.head\.hidden"),
    ({"n_outputs": 0}, r"models\.n_outputs"),
    ({"modalities": []}, r"models\.modalities"),
    ({"modalities": ["eeg", "eeg"]}, r"models\.modalities"),
    ({"fusion": "attention"}, r"models\.fusion"),
    ({"inputs": {}}, r"inputs\.eeg"),
    ({"inputs": {"eeg": {"shape": [32, 256], "sampling_rate": 64,
                         "channel_names": ["Fp1"] * 3}}}, r"channel_names"),
    ({"inputs": {"eeg": {"shape": [32, 20], "sampling_rate": 64}}}, r"models\.eeg"),
    ({"inputs": {"eeg": {"shape": [32, 256]}}}, r"models\.eeg\.sampling_rate"),
    ({"inputs": {"eeg": {"shape": [32], "sampling_rate": 64}}}, r"inputs\.eeg\.shape"),
])
def test_config_errors_name_the_key(change, key):
    spec = _spec("eeg")
    spec.update(change)
    with pytest.raises(ConfigError, match=key):
        build_model(spec)


def test_other_encoder_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"models\.eog\.kernel_size"):
        build_encoder("eog_cnn", {"kernel_size": 4}, EOG_INFO, modality="eog")
    with pytest.raises(ConfigError, match=r"models\.eye\.hidden"):
        build_encoder("eye_mlp", {"hidden": []}, EYE_INFO, modality="eye")
    with pytest.raises(ConfigError, match=r"models\.face\.img_size"):
        build_encoder("timm", {"img_size": 0}, FACE_INFO, modality="face")
    with pytest.raises(ConfigError, match=r"models\.eeg\.reorder"):
        build_encoder("tsception", {"reorder": True}, {"shape": [28, 256], "sampling_rate": 64},
                      modality="eeg")


# ----------------------------------------------------------------------------- torchvision shim
def test_shim_lets_timm_import_and_is_idempotent():
    state = shim.ensure_timm_importable()
    assert state in ("native", "shimmed")
    assert shim.ensure_timm_importable() == state
    import timm

    assert "test_vit" in timm.list_models("test_*")


def test_shim_is_inactive_when_torchvision_imports(monkeypatch):
    fake = types.SimpleNamespace(import_module=lambda name: types.ModuleType(name))
    monkeypatch.setattr(shim, "importlib", fake)
    monkeypatch.setattr(shim, "_STATE", None)
    lib_before = shim._LIB
    assert shim.ensure_timm_importable() == "native"
    assert shim._LIB is lib_before


def test_shim_passes_other_errors_through(monkeypatch):
    def broken(name):
        raise RuntimeError("something else entirely")

    monkeypatch.setattr(shim, "importlib", types.SimpleNamespace(import_module=broken))
    monkeypatch.setattr(shim, "_STATE", None)
    with pytest.raises(RuntimeError, match="something else"):
        shim.ensure_timm_importable()


def test_shim_defines_nothing_when_torchvision_works_in_a_fresh_process():
    code = (
        "import sys, types, torch\n"
        "sys.modules['torchvision'] = types.ModuleType('torchvision')  # a working torchvision\n"
        "from cmkd.models import _torchvision_shim as s\n"
        "assert s.ensure_timm_importable() == 'native'\n"
        "assert s._LIB is None\n"
        "assert not torch._C._jit_get_schemas_for_operator('torchvision::nms')\n"
        "print('ok')\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_an_encoder_module_with_untyped_defaults_is_refused(tmp_path, monkeypatch):
    """Extra encoder modules declare ENCODER_PARAMS (typed, read by the check before the DAG); a
    module that still declares plain ENCODER_DEFAULTS is refused when the registry loads it."""
    import sys

    from cmkd.models import registry

    (tmp_path / "untyped_encoders.py").write_text("ENCODERS = {}\nENCODER_DEFAULTS = {'toy': {'width': 4}}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "EXTRA_MODULES", ("untyped_encoders",))
    monkeypatch.setattr(registry, "_extras_loaded", False)
    monkeypatch.delitem(sys.modules, "untyped_encoders", raising=False)
    with pytest.raises(ImportError, match="untyped_encoders: declare the encoders' parameters as ENCODER_PARAMS"):
        registry._load_extras()
