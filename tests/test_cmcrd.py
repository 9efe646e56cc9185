"""CMCRD (eye <-> EEG): MCC and entropy weights against hand computation, the new encoders, the
methods' training steps, and a tiny Snakemake run of the eye-to-eeg track."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from cmkd.errors import ConfigError
from cmkd.methods import method_class
from cmkd.methods.base import RunContext
from cmkd.methods.cmcrd import CMCRD, CMCRDTeacher, entropy_weights, mcc_loss
from cmkd.models.registry import build_encoder, build_model
from cmkd.train import Part

from conftest import tiny_config


# ----------------------------------------------------------------------------- hand computations
def _softmax_rows(rows, t=1.0):
    out = []
    for r in rows:
        e = [math.exp(v / t) for v in r]
        s = sum(e)
        out.append([v / s for v in e])
    return out


def _entropy(p):
    return -sum(v * math.log(v) for v in p if v > 0)


def _mcc_by_hand(logits, t):
    p = _softmax_rows(logits, t)
    b, k = len(p), len(p[0])
    a = [1 + math.exp(-_entropy(row)) for row in p]
    w = [b * ai / sum(a) for ai in a]
    c = [[sum(w[i] * p[i][j] * p[i][jj] for i in range(b)) for jj in range(k)] for j in range(k)]
    c = [[v / sum(row) for v in row] for row in c]
    return sum(c[j][jj] for j in range(k) for jj in range(k) if j != jj) / k


def test_mcc_three_samples_two_classes_by_hand():
    logits = [[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    t = 2.0
    # written out: p = softmax(z / 2): [e/(e+1), 1/(e+1)], [1/(1+e^.5), e^.5/(1+e^.5)], [.5, .5]
    e = math.e
    p = [[e / (e + 1), 1 / (e + 1)], [1 / (1 + e ** 0.5), e ** 0.5 / (1 + e ** 0.5)], [0.5, 0.5]]
    a = [1 + math.exp(sum(v * math.log(v) for v in row)) for row in p]
    w = [3 * x / sum(a) for x in a]
    c01 = sum(w[i] * p[i][0] * p[i][1] for i in range(3))
    c00 = sum(w[i] * p[i][0] ** 2 for i in range(3))
    c11 = sum(w[i] * p[i][1] ** 2 for i in range(3))
    expected = (c01 / (c00 + c01) + c01 / (c11 + c01)) / 2
    assert expected == pytest.approx(_mcc_by_hand(logits, t), rel=1e-12)
    got = mcc_loss(torch.tensor(logits, dtype=torch.float64), temperature=t)
    assert float(got) == pytest.approx(expected, rel=1e-10)
    # temperature matters
    assert float(mcc_loss(torch.tensor(logits, dtype=torch.float64), 1.0)) != pytest.approx(expected, rel=1e-3)


def test_mcc_limits():
    # confident, distinct classes: no confusion
    assert float(mcc_loss(torch.tensor([[50.0, -50.0], [-50.0, 50.0]]), 1.0)) == pytest.approx(0.0, abs=1e-6)
    # uniform predictions: normalised confusion 1/K everywhere -> (K (K-1) / K) / K = (K - 1) / K
    for k in (2, 3, 4):
        assert float(mcc_loss(torch.zeros(5, k), 2.5)) == pytest.approx((k - 1) / k, rel=1e-6)
    rand = mcc_loss(torch.randn(7, 3, dtype=torch.float64), 2.5)
    assert 0.0 <= float(rand) <= 1.0
    with pytest.raises(ValueError):
        mcc_loss(torch.zeros(4, 1))


def test_entropy_weights_sum_and_bounds():
    probs = [[1.0, 0.0], [0.5, 0.5], [0.8, 0.2], [0.3, 0.7]]
    a = [1 + math.exp(-_entropy(p)) for p in probs]
    expected = [4 * x / sum(a) for x in a]
    w = entropy_weights(torch.tensor(probs, dtype=torch.float64))
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-12)
    assert float(w.sum()) == pytest.approx(4.0)
    # the confident sample weighs most, the uniform one least
    assert int(w.argmax()) == 0 and int(w.argmin()) == 1
    for k in (2, 4):
        lo, hi = (k + 1) / (2 * k), 2 * k / (k + 1)
        g = torch.Generator().manual_seed(k)
        for scale in (0.1, 1.0, 20.0):
            p = torch.softmax(scale * torch.randn(16, k, generator=g, dtype=torch.float64), dim=1)
            ww = entropy_weights(p)
            assert float(ww.sum()) == pytest.approx(16.0)
            assert float(ww.min()) >= lo - 1e-12 and float(ww.max()) <= hi + 1e-12
        # extreme: one confident sample among uniform ones approaches the upper bound
        p = torch.full((1000, k), 1.0 / k, dtype=torch.float64)
        p[0] = 0
        p[0, 0] = 1
        assert float(entropy_weights(p)[0]) == pytest.approx(hi, rel=1e-2)


# ----------------------------------------------------------------------------- encoders
@pytest.mark.parametrize("name, fs, t, hint", [
    ("shallowconvnet", 32, 128, (40, 59)),   # kernel 3, pool 10 stride 2: (126 - 10) // 2 + 1
    ("shallowconvnet", 250, 1000, (40, 61)),  # the paper's 25 / 75 / 15 samples at 250 Hz
    ("deepconvnet", 32, 128, (200, 1)),      # kernel 2: 127//3=42, 41//3=13, 12//3=4, 3//3=1
    ("deepconvnet", 250, 1000, (200, 7)),    # kernel 10: 991//3=330, 321//3=107, 98//3=32, 23//3=7
])
def test_eeg_convnet_shapes(name, fs, t, hint):
    enc = build_encoder(name, {"name": name}, {"shape": [32, t], "sampling_rate": fs}, modality="eeg")
    enc.eval()
    feat, h = enc(torch.randn(3, 32, t))
    assert tuple(h.shape) == (3, *hint)
    assert tuple(feat.shape) == (3, hint[0] * hint[1]) and enc.out_dim == hint[0] * hint[1]


def test_de_mlp_shapes_and_errors():
    enc = build_encoder("de_mlp", {"name": "de_mlp", "hidden": [32, 16], "band_dim": 8}, {"shape": [62, 5]},
                        modality="eeg_de")
    feat, hint = enc(torch.randn(4, 62, 5))
    assert tuple(feat.shape) == (4, 16) and tuple(hint.shape) == (4, 8, 62) and enc.out_dim == 16
    with pytest.raises(ConfigError, match="models.eeg_de.bogus"):
        build_encoder("de_mlp", {"bogus": 1}, {"shape": [62, 5]}, modality="eeg_de")
    with pytest.raises(ConfigError, match="models.eeg.n_filters"):
        build_encoder("shallowconvnet", {"n_filters": 0}, {"shape": [32, 128], "sampling_rate": 32}, modality="eeg")
    with pytest.raises(ConfigError, match="too short"):
        build_encoder("deepconvnet", {"kernel_length": 30}, {"shape": [32, 128], "sampling_rate": 32}, modality="eeg")


# ----------------------------------------------------------------------------- methods
def _spec(mod, enc, shape, n_out=2):
    info = {"shape": shape}
    if mod == "eeg":
        info["sampling_rate"] = 32
    return {"modalities": [mod], "encoders": {mod: enc}, "inputs": {mod: info},
            "head": {"hidden": 16, "dropout": 0.0}, "n_outputs": n_out}


def _data(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    eye = torch.randn(n, 31, generator=g) + y[:, None].float()
    eeg = torch.randn(n, 32, 128, generator=g) + 0.5 * y[:, None, None].float()
    return Part(x={"eye": eye, "eeg": eeg}, y=y, index=np.arange(n))


def _fit(method, part, steps=25, lr=1e-2):
    opt = torch.optim.Adam(method.trainable_parameters(), lr=lr)
    if hasattr(method, "configure"):
        method.configure(parts={"train": part}, device=torch.device("cpu"), optimizer=opt)
    method.train()
    batch = part.batch(torch.arange(len(part)), "cpu")
    totals = []
    for _ in range(steps):
        _, terms = method.training_step(batch)
        total = sum(terms.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        totals.append(float(total.detach()))
    return totals, terms


def test_cmcrd_teacher_loss_decreases_and_mcc_term():
    torch.manual_seed(0)
    part = _data()
    teacher = build_model(_spec("eye", {"name": "eye_mlp", "dropout": 0.0}, [31]))
    m = method_class("cmcrd_teacher")(teacher, {}, {"mu": 1.0, "temperature": 2.5}, "classification", 2)
    totals, terms = _fit(m, part)
    assert set(terms) == {"ce", "mcc"}
    assert totals[-1] < 0.5 * totals[0]
    with pytest.raises(ConfigError, match="params.mu"):
        CMCRDTeacher(teacher, {}, {"mu": -1}, "classification", 2)
    with pytest.raises(ConfigError, match=r"^methods\.cm_t: classification only"):  # the run's config key
        CMCRDTeacher(teacher, {}, {}, "regression", 1, context=RunContext(key="cm_t"))


@pytest.mark.parametrize("encoder", [{"name": "shallowconvnet", "dropout": 0.0}, {"name": "eegnet", "dropout": 0.0}])
def test_cmcrd_student_loss_decreases(encoder):
    torch.manual_seed(0)
    part = _data()
    teacher = build_model(_spec("eye", {"name": "eye_mlp", "dropout": 0.0}, [31]))
    student = build_model(_spec("eeg", encoder, [32, 128]))
    m = CMCRD(student, {"teacher": teacher}, {"nce_k": 8}, "classification", 2)
    assert m.memory is None
    totals, terms = _fit(m, part, steps=30)
    assert set(terms) == {"ce", "crd"}
    assert m.memory.k == 8 and m.memory.n_data == len(part)
    assert np.mean(totals[-3:]) < np.mean(totals[:3])
    # the teacher stays frozen; the CRD heads are trained
    assert all(not p.requires_grad for p in teacher.parameters())
    assert m.embed_t.linear.weight.grad is not None


def test_cmcrd_entropy_weighting_uses_teacher_confidence():
    torch.manual_seed(0)
    student = build_model(_spec("eeg", {"name": "eegnet"}, [32, 128]))
    teacher = build_model(_spec("eye", {"name": "eye_mlp"}, [31]))
    m = CMCRD(student, {"teacher": teacher}, {}, "classification", 2)
    s = torch.zeros(3, 2)
    t = torch.tensor([[10.0, -10.0], [0.0, 0.0], [1.0, 0.0]])
    w = m.unimodal_weights(s, t)
    assert float(w.sum()) == pytest.approx(3.0) and int(w.argmax()) == 0 and int(w.argmin()) == 1
    m.params["weighting"] = "none"
    assert torch.equal(m.unimodal_weights(s, t), torch.ones(3))
    m.params["weighting"] = "student"
    assert torch.allclose(m.unimodal_weights(s, t), torch.ones(3))  # uniform student -> equal weights
    with pytest.raises(ConfigError, match="params.weighting"):
        CMCRD(student, {"teacher": teacher}, {"weighting": "bogus"}, "classification", 2)


def test_teacher_mask_by_hand():
    from cmkd.methods.cmcrd import teacher_mask

    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    y = torch.tensor([0, 0, 1])          # right, wrong, wrong
    assert teacher_mask(logits, y, "none") is None
    assert teacher_mask(logits, y, "signed").tolist() == [1.0, -1.0, -1.0]
    assert teacher_mask(logits, y, "correct").tolist() == [1.0, 0.0, 0.0]


@pytest.mark.parametrize("target, mask", [("nce", "signed"), ("nce", "none"), ("ce", "correct")])
def test_cmcrd_weighting_target_and_mask(target, mask):
    """weighting_target: nce puts the teacher-entropy weights (computed here by hand) into the NCE
    scores and leaves the CE plain; ce keeps them on the CE; the mask is the teacher's correctness."""
    import copy

    from cmkd import losses

    torch.manual_seed(0)
    part = _data()
    teacher = build_model(_spec("eye", {"name": "eye_mlp", "dropout": 0.0}, [31]))
    student = build_model(_spec("eeg", {"name": "eegnet", "dropout": 0.0}, [32, 128]))
    with torch.no_grad():  # a teacher of varied confidence, so that the weights differ from 1
        for q in teacher.head.parameters():
            q.mul_(6.0)
    m = CMCRD(student, {"teacher": teacher}, {"nce_k": 8, "weighting_target": target, "teacher_mask": mask},
              "classification", 2)
    m.configure(parts={"train": part}, device=torch.device("cpu"))
    m.train()
    batch = part.batch(torch.arange(6), "cpu")
    s_out = m.student(batch)
    t_out = m.teacher_outputs(batch)["teacher"]
    # the weights by hand: a_i = 1 + exp(-H(softmax(teacher_i))), w_i = B a_i / sum a
    p_t = torch.softmax(t_out.logits.detach().double(), dim=1).tolist()
    a = [1 + math.exp(-_entropy(row)) for row in p_t]
    w = torch.tensor([6 * x / sum(a) for x in a], dtype=torch.float64)
    right = (t_out.logits.argmax(1) == batch["y"]).double()
    want_mask = {"none": None, "signed": 2 * right - 1, "correct": right}[mask]
    y = batch["y"]
    ce = torch.nn.functional.cross_entropy(s_out.logits, y, reduction="none").double()
    terms = m.base_terms(s_out, t_out, y)
    ce = ce.detach()
    want_ce = float(ce.mean()) if target == "nce" else float((w * ce).mean())
    assert float(terms["ce"]) == pytest.approx(want_ce, rel=1e-5)
    mem, mem_plain = copy.deepcopy(m.memory), copy.deepcopy(m.memory)
    torch.manual_seed(1)
    got = m.feature_terms(batch, s_out, t_out)["crd"]
    s, t = m._pair(s_out, t_out)
    torch.manual_seed(1)   # the same negatives
    want = 0.8 * losses.crd(m.embed_s(s), m.embed_t(t), batch["index"], mem, temperature=0.07,
                            score_weights=w.float() if target == "nce" else None,
                            mask=None if want_mask is None else want_mask.float())
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    if target == "nce" or mask != "none":  # differs from plain CRD on this batch
        torch.manual_seed(1)
        plain = 0.8 * losses.crd(m.embed_s(s), m.embed_t(t), batch["index"], mem_plain, temperature=0.07)
        assert float(plain) != pytest.approx(float(want), rel=1e-3)
    if target == "nce":
        assert float(w.max() - w.min()) > 0.05
    with pytest.raises(ConfigError, match="params.weighting_target"):
        CMCRD(student, {"teacher": teacher}, {"weighting_target": "bogus"}, "classification", 2)


# ----------------------------------------------------------------------------- workflow
def test_tiny_snakemake_eye_to_eeg(tmp_path, snakemake_runner):
    cfg = tiny_config()
    cfg["seeds"] = [0]
    cfg["training"].update({"max_epochs": 1, "patience": 1})
    cfg["encoders"]["eeg"] = {"name": "shallowconvnet"}
    cfg["tracks"] = {"eye-to-eeg": {"teacher": ["eye"], "student": ["eeg"]}}
    cfg["methods"] = {
        "cmcrd_teacher": {"class": "cmcrd_teacher", "modalities": "teacher", "params": {"mu": 1.0, "temperature": 2.5}},
        "cmcrd": {"class": "cmcrd", "modalities": "student", "requires": {"teacher": "cmcrd_teacher"},
                  "params": {"beta": 0.8, "nce_k": 64}},
    }
    cfg["experiments"] = [{"dataset": "synthetic", "track": "eye-to-eeg", "dimensions": ["arousal"],
                           "methods": ["cmcrd_teacher", "cmcrd"]}]
    cfg["tables"] = [{"name": "cmcrd", "title": "CMCRD", "track": "eye-to-eeg", "metric": "accuracy",
                      "rows": {"cmcrd_teacher": None, "cmcrd": None}}]
    r = snakemake_runner(tmp_path, "--cores", "2", config=cfg)
    assert r.returncode == 0, r.stderr[-4000:]
    runs = pd.read_csv(tmp_path / "results/summary/runs.csv")
    assert set(runs["method"]) == {"cmcrd_teacher", "cmcrd"} and runs["status"].isin(["ok", "degenerate"]).all()
    base = tmp_path / "results/synthetic/eye-to-eeg/arousal"
    hist = pd.read_csv(base / "cmcrd/seed0/history.csv")
    assert {"train_ce", "train_crd"} <= set(hist.columns)
    assert {"train_ce", "train_mcc"} <= set(pd.read_csv(base / "cmcrd_teacher/seed0/history.csv").columns)


def test_nst_is_identically_zero_when_the_teacher_feature_is_a_vector():
    """Why the CMCRD comparison's NST row takes the batch as its positions: the eye teacher's features are vectors (B, C); as a
    map of one position, each L2-normalised channel is +-1, every polynomial-kernel entry is 1, and
    L_MMD^2 = 1 + 1 - 2 = 0 whatever the student does (no gradient either)."""
    from cmkd import losses
    from cmkd.methods.zoo_common import match_spatial

    g = torch.Generator().manual_seed(0)
    student_map = torch.randn(6, 8, 20, generator=g, requires_grad=True)  # an EEG hint (B, C, T)
    teacher_vec = torch.randn(6, 16, generator=g)                         # the eye MLP's hint (B, C)
    s, t = match_spatial(student_map, teacher_vec)
    assert s.shape[2:] == t.shape[2:] == (1,)
    loss = losses.nst(s, t)
    assert abs(float(loss.detach())) < 1e-6
    loss.backward()
    assert float(student_map.grad.abs().max()) < 1e-6
    # with a real map on both sides the same loss is not zero
    assert float(losses.nst(torch.randn(6, 8, 20, generator=g), torch.randn(6, 16, 20, generator=g))) > 1e-3


@pytest.mark.parametrize("student_mod, enc, shape", [
    ("eeg", {"name": "eegnet", "dropout": 0.0}, [32, 128]),   # eye -> EEG: a map against a vector
    ("eye", {"name": "eye_mlp", "dropout": 0.0}, [31]),        # vector against vector
])
def test_nst_over_the_batch_transfers_between_eye_and_eeg(student_mod, enc, shape):
    """The CMCRD comparison's NST row (positions: batch): a non-zero NST term and a non-zero gradient
    on the student's encoder, where the spatial NST of the same pair is 0."""
    torch.manual_seed(0)
    part = _data()
    t_mod, t_enc, t_shape = (("eye", {"name": "eye_mlp", "dropout": 0.0}, [31]) if student_mod == "eeg"
                             else ("eeg", {"name": "eegnet", "dropout": 0.0}, [32, 128]))
    teacher = build_model(_spec(t_mod, t_enc, t_shape))
    student = build_model(_spec(student_mod, enc, shape))
    cls = method_class("nst")
    m = cls(student, {"teacher": teacher}, {"feature": "hint", "positions": "batch"}, "classification", 2)
    m.configure(parts={"train": part}, device=torch.device("cpu"))
    m.train()
    batch = part.batch(torch.arange(12), "cpu")
    _, terms = m.training_step(batch)
    assert float(terms["nst"].detach()) > 1e-4
    student.zero_grad()
    terms["nst"].backward()
    grads = [p.grad.abs().max() for p in student.encoders.parameters() if p.grad is not None]
    assert grads and float(max(grads)) > 1e-8
    assert all(p.grad is None or float(p.grad.abs().max()) == 0 for p in teacher.parameters())
    # the same pair with NST's spatial positions: a constant (every normalised channel is +-1, or 0
    # where a ReLU unit is silent) with no gradient on the student (the reason for positions: batch)
    spatial = cls(student, {"teacher": teacher}, {"feature": "hint"}, "classification", 2)
    with pytest.warns(UserWarning, match="single spatial position"):
        spatial.configure(parts={"train": part}, device=torch.device("cpu"))
    _, terms = spatial.training_step(batch)
    student.zero_grad()
    terms["nst"].backward()
    spatial_grads = [float(p.grad.abs().max()) for p in student.encoders.parameters() if p.grad is not None]
    assert max(spatial_grads, default=0.0) < 1e-3 * float(max(grads))   # float32 round-off only


def test_cmcrd_comparison_rows_share_one_teacher():
    """Every distilled row of the CMCRD comparison learns from CMCRD's own teacher, in the default
    config and in the paper grid, and every row is run in that grid."""
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    cfg = yaml.safe_load((root / "config.yaml").read_text())
    paper = yaml.safe_load((root / "config" / "paper.yaml").read_text())
    table = next(t for t in cfg["tables"] if t["name"] == "cmcrd_comparison")
    methods = cfg["methods"]
    teacher = methods["cmcrd"]["requires"]["teacher"]
    distilled = [m for m in table["rows"] if methods[m].get("requires")]
    assert {methods[m]["class"] for m in distilled} >= {"kd", "crd", "fitnets", "sp", "rkd", "pkt", "cmcrd"}
    for m in distilled:
        assert methods[m]["requires"] == {"teacher": teacher}, m
    from cmkd.config import deep_merge, experiment_methods

    optional = set(table["optional_rows"])
    assert {methods[m]["class"] for m in optional} == {"nst", "cmcrd"}  # NST and the nce reading: paper grid only
    for c, exps, want in ((cfg, cfg["experiments"], set(distilled) - optional),
                          (deep_merge(cfg, paper), paper["experiments"], set(distilled))):
        eye = [e for e in exps if e["track"] == table["track"]]  # the experiments the table shows
        assert eye
        for e in eye:
            ms = experiment_methods(c, e)
            assert want <= set(ms), (e["track"], want - set(ms))
        # the default runs neither optional row (its time budget); the paper grid runs both on every CMCRD track
        runs_optional = {m for e in exps for m in experiment_methods(c, e)} & optional
        assert runs_optional == (optional if c is not cfg else set())
    assert "NST" in table["caption"] and "reconstruction" in table["caption"] and "identically 0" in table["caption"]
    assert methods["nst_mcc"]["params"]["positions"] == "batch"
    assert methods["cmcrd_nce"]["params"]["weighting_target"] == "nce" and "UnCRD" in table["caption"]
    merged = deep_merge(cfg, paper)
    setting = set(experiment_methods(merged, {"methods": ["cmcrd_setting"]}))
    for e in paper["experiments"]:   # every CMCRD comparison of the paper grid (the whole setting) has the NST row
        ms = experiment_methods(merged, e)
        if setting <= set(ms):
            assert "nst_mcc" in ms, (e["dataset"], e["track"])
