"""Uncertainty-aware cross-modal prototype KD (face -> EEG): prototypes, similarity alignment and
evidential uncertainty against hand computation, training steps (classification and regression),
the regression RMSE, and a tiny Snakemake run of the face-to-eeg track."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from cmkd import metrics
from cmkd.errors import ConfigError
from cmkd.methods import method_class
from cmkd.methods.uaproto import (UAProto, bin_targets, class_prototypes, cosine_to_prototypes,
                                  evidential_uncertainty, prototype_alignment)
from cmkd.models.registry import build_model
from cmkd.train import Part, evaluate

from conftest import tiny_config


# ----------------------------------------------------------------------------- hand computations
def test_class_prototypes_by_hand():
    feats = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]])
    protos, present = class_prototypes(feats, torch.tensor([0, 0, 1]), 3)
    # class 0: mean of (0.6, 0.8) and (1, 0) = (0.8, 0.4), normalised by sqrt(0.8)
    n = math.sqrt(0.8 ** 2 + 0.4 ** 2)
    np.testing.assert_allclose(protos.numpy(), [[0.8 / n, 0.4 / n], [0.0, 1.0], [0.0, 0.0]], atol=1e-6)
    assert present.tolist() == [True, True, False]


def test_bin_targets_use_the_labels_tie_rule():
    """Rating 5 (y = 0.5) is low in the binary labels, so it is in the low bin too."""
    from cmkd.data import labels

    y = torch.tensor([0.0, 0.49, 0.5, 0.99, 1.0])
    assert bin_targets(y, 2).tolist() == [0, 0, 0, 1, 1]
    ratings = np.array([1.0, 4.92, 5.0, 8.92, 9.0])
    assert bin_targets(torch.from_numpy(labels.regression(ratings)), 2).tolist() == labels.binary(ratings, 5.0).tolist()
    # the threshold is the dimension's: 4.5 puts rating 4.92 high
    assert bin_targets(y, 2, threshold=4.5).tolist() == [0, 1, 1, 1, 1]
    # more bins: equal width, a target on an inner edge goes to the lower bin
    assert bin_targets(y, 4).tolist() == [0, 1, 1, 3, 3]
    with pytest.raises(ValueError, match="tie"):
        bin_targets(y, 2, tie="middle")


def test_confidence_weight_ranks_a_confident_sample_above_an_ambiguous_one():
    """(U3') w = 1 - H(softmax(cos / tau)) / log K by hand: cosines (0.95, -0.5) (clear) against
    (0.9, 0.9) (ambiguous), tau = 0.1; the evidence weight 1 - u ranks them the other way."""
    from cmkd.methods.uaproto import confidence_weights

    cos = torch.tensor([[0.95, -0.5], [0.9, 0.9]], dtype=torch.float64)
    p1 = 1 / (1 + math.exp(-14.5))  # softmax(9.5, -5)[0]
    h1 = -(p1 * math.log(p1) + (1 - p1) * math.log(1 - p1))
    w_clear, w_ambiguous = 1 - h1 / math.log(2), 0.0
    got = confidence_weights(cos / 0.1)
    np.testing.assert_allclose(got.numpy(), [w_clear, w_ambiguous], rtol=1e-9, atol=1e-12)
    # a milder case, where the entropy is far from 0: cosines (0.3, 0.1), tau = 0.1 -> softmax(3, 1)
    q = 1 / (1 + math.exp(-2.0))
    h = -(q * math.log(q) + (1 - q) * math.log(1 - q))
    assert float(confidence_weights(torch.tensor([[3.0, 1.0]], dtype=torch.float64))) == pytest.approx(1 - h / math.log(2), rel=1e-12)
    # three prototypes: normalised by log 3
    p3 = [math.exp(v) / (math.exp(1) + 2) for v in (1.0, 0.0, 0.0)]
    h3 = -sum(v * math.log(v) for v in p3)
    assert float(confidence_weights(torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))) == pytest.approx(1 - h3 / math.log(3), rel=1e-12)
    # the method: default weight ranks the clear sample first; weight: evidence keeps the old ranking
    m, _ = _method("classification")
    w = m.sample_weights(cos)
    assert float(w[0]) > float(w[1])
    old = _method("classification", {"weight": "evidence"})[0].sample_weights(cos)
    np.testing.assert_allclose(old.numpy(), [0.779, 0.858], atol=1e-3)
    assert float(old[0]) < float(old[1])
    assert _method("classification", {"uncertainty": False})[0].sample_weights(cos).tolist() == [1.0, 1.0]


def test_prototype_similarity_alignment_by_hand():
    protos = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    student = torch.tensor([[1.0, 1.0], [0.0, 3.0]], dtype=torch.float64)
    teacher = torch.tensor([[2.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    tau = 0.5
    cs = cosine_to_prototypes(student, protos)
    ct = cosine_to_prototypes(teacher, protos)
    r = 1 / math.sqrt(2)
    np.testing.assert_allclose(cs.numpy(), [[r, r], [0, 1]], atol=1e-12)
    np.testing.assert_allclose(ct.numpy(), [[1, 0], [r, r]], atol=1e-12)

    def kl(q_logits, s_logits):
        q = [math.exp(v) / sum(math.exp(x) for x in q_logits) for v in q_logits]
        s = [math.exp(v) / sum(math.exp(x) for x in s_logits) for v in s_logits]
        return sum(a * math.log(a / b) for a, b in zip(q, s))

    # sample 0: q = softmax(2, 0) = (e^2, 1)/(e^2 + 1), s = softmax(r/tau, r/tau) = (1/2, 1/2)
    e2 = math.e ** 2
    k0 = (e2 / (e2 + 1)) * math.log(2 * e2 / (e2 + 1)) + (1 / (e2 + 1)) * math.log(2 / (e2 + 1))
    assert k0 == pytest.approx(kl([2, 0], [2 * r, 2 * r]), rel=1e-12)
    # sample 1: q = (1/2, 1/2), s = softmax(0, 2)
    k1 = kl([2 * r, 2 * r], [0, 2])
    got = prototype_alignment(cs / tau, ct / tau)
    np.testing.assert_allclose(got.numpy(), [k0, k1], rtol=1e-10)
    assert float(prototype_alignment(ct / tau, ct / tau).abs().max()) < 1e-12  # identical -> 0


def test_evidential_uncertainty_by_hand_and_bounds():
    cos = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    u, b = evidential_uncertainty(cos, tau_u=0.5)
    e2 = math.e ** 2
    s0 = (e2 + 1) + (1 + 1)
    np.testing.assert_allclose(u.numpy(), [2 / s0, 2 / 4.0], rtol=1e-12)
    np.testing.assert_allclose(b[0].numpy(), [e2 / s0, 1 / s0], rtol=1e-12)
    np.testing.assert_allclose((b.sum(1) + u).numpy(), [1.0, 1.0], rtol=1e-12)  # belief + uncertainty = 1
    g = torch.Generator().manual_seed(0)
    for tau_u in (0.1, 0.5, 2.0):
        for k in (2, 5):
            c = torch.nn.functional.normalize(torch.randn(50, 8, generator=g, dtype=torch.float64), dim=1)
            p = torch.nn.functional.normalize(torch.randn(k, 8, generator=g, dtype=torch.float64), dim=1)
            uu, bb = evidential_uncertainty(cosine_to_prototypes(c, p), tau_u)
            lo, hi = 1 / (1 + math.exp(1 / tau_u)), 1 / (1 + math.exp(-1 / tau_u))
            assert 0 < float(uu.min()) and float(uu.max()) <= 1
            assert float(uu.min()) >= lo - 1e-12 and float(uu.max()) <= hi + 1e-12
            np.testing.assert_allclose((bb.sum(1) + uu).numpy(), 1.0, rtol=1e-12)
    # the extreme cosines reach the bounds exactly
    uu, _ = evidential_uncertainty(torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64), 0.5)
    np.testing.assert_allclose(uu.numpy(), [1 / (1 + math.e ** 2), 1 / (1 + math.e ** -2)], rtol=1e-12)


# ----------------------------------------------------------------------------- methods
FACE = {"shape": [1, 3, 32, 32]}
EEG = {"shape": [32, 128], "sampling_rate": 32}


def _spec(mod, n_out):
    enc = {"face": {"name": "timm", "arch": "test_convnext3"}, "eeg": {"name": "eegnet", "dropout": 0.0}}[mod]
    info = {"face": FACE, "eeg": EEG}[mod]
    return {"modalities": [mod], "encoders": {mod: enc}, "inputs": {mod: info},
            "head": {"hidden": 16, "dropout": 0.0}, "n_outputs": n_out}


def _data(n=24, regression=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    cls = torch.arange(n) % 2
    y = (0.25 + 0.5 * cls.float() + 0.1 * torch.rand(n, generator=g)) if regression else cls
    face = torch.randint(0, 256, (n, 1, 3, 32, 32), generator=g, dtype=torch.uint8)
    face[cls == 1] = face[cls == 1] // 2
    eeg = torch.randn(n, 32, 128, generator=g) + 0.5 * cls[:, None, None].float()
    return Part(x={"face": face, "eeg": eeg}, y=y, index=np.arange(n))


def _method(task, params=None):
    torch.manual_seed(0)
    n_out = 1 if task == "regression" else 2
    teacher = build_model(_spec("face", n_out))
    student = build_model(_spec("eeg", n_out))
    return UAProto(student, {"teacher": teacher}, params or {}, task, n_out), teacher


def _fit(m, part, steps=25, lr=5e-3):
    opt = torch.optim.Adam(m.trainable_parameters(), lr=lr)
    m.configure(parts={"train": part}, device=torch.device("cpu"), optimizer=opt)
    m.train()
    batch = part.batch(torch.arange(len(part)), "cpu")
    totals = []
    for _ in range(steps):
        _, terms = m.training_step(batch)
        total = sum(terms.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        totals.append(float(total.detach()))
    return totals, terms


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_uaproto_loss_decreases(task):
    part = _data(regression=task == "regression")
    m, teacher = _method(task)
    t_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    totals, terms = _fit(m, part)
    assert set(terms) == {"task", "proto", "feat", "head"}
    assert totals[-1] < 0.7 * totals[0], totals
    assert m.prototypes.shape == (2, teacher.fused_dim) and m.present.tolist() == [True, True]
    # the teacher (and thus its head, the distillation head) is untouched; the adapter is trained
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, t_before[k]), k
    assert m.adapter.weight.grad is not None


def test_uaproto_prototypes_follow_the_frozen_teacher():
    part = _data()
    m, teacher = _method("classification")
    m.configure(parts={"train": part}, device=torch.device("cpu"))
    with torch.no_grad():
        z = teacher(part.batch(torch.arange(len(part)), "cpu")).features["fused"]
    zn = z / z.norm(dim=1, keepdim=True)
    for k in (0, 1):
        c = zn[part.y == k].mean(0)
        np.testing.assert_allclose(m.prototypes[k].numpy(), (c / c.norm()).numpy(), rtol=1e-5, atol=1e-6)


def test_uaproto_logs_the_weight_mean_and_spread():
    part = _data()
    m, _ = _method("classification")
    _, terms = _fit(m, part, steps=1)
    d = m.diagnostics
    assert set(d) == {"ua_w_mean", "ua_w_std"}
    with torch.no_grad():
        z = m.teachers["teacher"](part.batch(torch.arange(len(part)), "cpu")).features["fused"]
        w = m.sample_weights(cosine_to_prototypes(z, m.prototypes))
    assert d["ua_w_mean"] == pytest.approx(float(w.mean()), rel=1e-5)
    assert d["ua_w_std"] == pytest.approx(float(w.std(unbiased=False)), rel=1e-4, abs=1e-7)


def test_uaproto_regression_bins_follow_the_dimension_rule():
    m, _ = _method("regression")
    y = torch.tensor([0.5, 0.4375, 0.55])  # ratings 5, 4.5, 5.4
    assert m.proto_labels(y).tolist() == [0, 0, 1]
    m.dimension_spec = {"task": "regression", "threshold": 4.5}
    assert m.bin_rule() == (4.5, "low")
    assert m.proto_labels(y).tolist() == [1, 0, 1]
    m2, _ = _method("regression", {"bin_threshold": 5.0})
    m2.dimension_spec = {"threshold": 4.5}
    assert m2.proto_labels(y).tolist() == [0, 0, 1]


def test_uaproto_param_errors():
    with pytest.raises(ConfigError, match="params.tau"):
        _method("classification", {"tau": 0})
    with pytest.raises(ConfigError, match="params.n_bins"):
        _method("regression", {"n_bins": 1})
    with pytest.raises(ConfigError, match="unknown key"):
        _method("classification", {"bogus": 1})
    with pytest.raises(ConfigError, match="params.uncertainty"):
        _method("classification", {"uncertainty": "yes"})
    with pytest.raises(ConfigError, match="params.weight"):
        _method("classification", {"weight": "belief"})
    with pytest.raises(ConfigError, match="params.bin_tie"):
        _method("regression", {"bin_tie": "middle"})
    assert method_class("uaproto") is UAProto


def test_uaproto_uncertainty_weights_change_the_alignment_terms():
    part = _data()
    batch = part.batch(torch.arange(len(part)), "cpu")
    out = {}
    for flag in (True, False):
        m, _ = _method("classification", {"uncertainty": flag})
        m.configure(parts={"train": part}, device=torch.device("cpu"))
        m.eval()
        torch.manual_seed(1)
        _, terms = m.training_step(batch)
        out[flag] = terms
    # weights 1 - u lie in [0, 1): the weighted terms are strictly smaller; the head term is unweighted
    assert float(out[True]["feat"].detach()) < float(out[False]["feat"].detach())
    assert float(out[True]["head"].detach()) == pytest.approx(float(out[False]["head"].detach()), rel=1e-6)


def test_regression_rmse_equals_direct_computation():
    part = _data(regression=True)
    m, _ = _method("regression")
    _fit(m, part, steps=5)
    met, logits, _ = evaluate("regression", m.student, part, torch.device("cpu"), 7)
    m.student.eval()
    with torch.no_grad():
        pred = m.student(part.batch(torch.arange(len(part)), "cpu")).logits.reshape(-1).numpy().astype(np.float64)
    y = part.y.numpy().astype(np.float64)
    direct = math.sqrt(sum((a - b) ** 2 for a, b in zip(pred.tolist(), y.tolist())) / len(y))
    assert met["rmse"] == pytest.approx(direct, rel=1e-6)
    assert metrics.regression_metrics(y, pred)["rmse"] == pytest.approx(direct, rel=1e-12)
    assert met["rmse"] > 0


# ----------------------------------------------------------------------------- workflow
def test_tiny_snakemake_face_to_eeg(tmp_path, snakemake_runner):
    cfg = tiny_config()
    cfg["seeds"] = [0]
    cfg["training"].update({"max_epochs": 1, "patience": 1})
    cfg["encoders"]["eeg"] = {"name": "eegnet"}
    cfg["tracks"] = {"face-to-eeg": {"teacher": ["face"], "student": ["eeg"]}}
    cfg["methods"] = {
        "teacher": {"class": "fusion_teacher", "modalities": "teacher"},
        "uaproto": {"class": "uaproto", "modalities": "student", "requires": {"teacher": "teacher"},
                    "params": {"lambda_proto": 1.0, "lambda_feat": 1.0, "lambda_head": 1.0}},
    }
    cfg["experiments"] = [{"dataset": "synthetic", "track": "face-to-eeg", "dimensions": ["arousal"],
                           "methods": ["teacher", "uaproto"]}]
    cfg["tables"] = []
    # target the runs table only (no tables/report jobs): each job is a fresh Python process
    r = snakemake_runner(tmp_path, "--cores", "2", "results/summary/runs.csv", config=cfg)
    assert r.returncode == 0, r.stderr[-4000:]
    runs = pd.read_csv(tmp_path / "results/summary/runs.csv")
    # (two epochs on tiny data may predict one class: status degenerate, shown without a number)
    assert set(runs["method"]) == {"teacher", "uaproto"} and runs["status"].isin(["ok", "degenerate"]).all()
    hist = pd.read_csv(tmp_path / "results/synthetic/face-to-eeg/arousal/uaproto/seed0/history.csv")
    assert {"train_task", "train_proto", "train_feat", "train_head"} <= set(hist.columns)


def test_tau_u_is_read_only_with_the_evidence_weight():
    """The docstring's claim: the default weight (confidence) does not read tau_u; evidence does."""
    part = _data()
    batch = part.batch(torch.arange(len(part)), "cpu")

    def feat(params):
        m, _ = _method("classification", params)
        m.configure(parts={"train": part}, device=torch.device("cpu"))
        m.eval()
        torch.manual_seed(1)
        _, terms = m.training_step(batch)
        return float(terms["feat"].detach())

    assert feat({"tau_u": 0.1}) == feat({"tau_u": 2.0})
    assert feat({"weight": "evidence", "tau_u": 0.1}) != pytest.approx(feat({"weight": "evidence", "tau_u": 2.0}), rel=1e-4)
