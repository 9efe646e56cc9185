"""Uncertainty-aware cross-modal prototype KD (face -> EEG): prototypes, similarity alignment and
the uncertainty weight against hand computation, the total loss (U7) by hand on a two-sample batch,
the switches of the per-component ablation (each drops its term and nothing else), training steps
(classification and regression), the regression RMSE, and a tiny Snakemake run of the face-to-eeg
track."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from cmkd import metrics
from cmkd.accel import Amp
from cmkd.errors import ConfigError
from cmkd.methods import method_class
from cmkd.methods.uaproto import UAProto, bin_targets, class_prototypes, cosine_to_prototypes, prototype_alignment
from cmkd.models.registry import build_model
from cmkd.models.base import Output
from cmkd.train import Part, evaluate, train_steps

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
    """(U3) w = 1 - H(softmax(cos / tau)) / log K by hand: cosines (0.95, -0.5) (clear) against
    (0.9, 0.9) (ambiguous), tau = 0.1."""
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
    # the method ranks the clear sample first
    m, _ = _method("classification")
    np.testing.assert_allclose(m.sample_weights(cos).numpy(), [w_clear, w_ambiguous], rtol=1e-9, atol=1e-12)
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
    for switch in ("proto", "feat", "head"):
        with pytest.raises(ConfigError, match=f"params.{switch}"):
            _method("classification", {switch: 0})
    with pytest.raises(ConfigError, match="unknown key"):  # the evidential weight and its temperature are gone
        _method("classification", {"tau_u": 0.5})
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
    # weights in [0, 1] (not all 1): the weighted terms are strictly smaller; the head term is unweighted
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


# ----------------------------------------------------------------------------- the total (U7) and the ablation switches
class _Stub(torch.nn.Module):
    """A network whose fused feature is its input ``batch[key]`` (2-D) and whose head is ``x @ W``;
    ``classify`` is that head (the teacher's distillation head)."""

    def __init__(self, key, w):
        super().__init__()
        self.key = key
        self.w = torch.nn.Parameter(torch.as_tensor(w, dtype=torch.float64))

    def classify(self, z):
        return z @ self.w, None

    def forward(self, batch):
        z = batch[self.key]
        return Output(self.classify(z)[0], {"fused": z})


def _stub_method(params):
    """UAProto on the stubs, identity heads and adapter, prototypes (1, 0) and (0, 1)."""
    eye = [[1.0, 0.0], [0.0, 1.0]]
    m = UAProto(_Stub("s", eye), {"teacher": _Stub("t", eye)}, params, "classification", 2)
    m.adapter = torch.nn.Linear(2, 2).double()
    with torch.no_grad():
        m.adapter.weight.copy_(torch.tensor(eye))
        m.adapter.bias.zero_()
    m.prototypes = torch.tensor(eye, dtype=torch.float64)
    m.present = torch.tensor([True, True])
    return m


# z_t: (2, 0) at prototype 0, (1, 1) halfway; z_s = g(z_s): (1, 1) halfway, (0, 3) at prototype 1
STUB_BATCH = {"t": torch.tensor([[2.0, 0.0], [1.0, 1.0]], dtype=torch.float64),
              "s": torch.tensor([[1.0, 1.0], [0.0, 3.0]], dtype=torch.float64),
              "y": torch.tensor([0, 1]), "index": torch.tensor([0, 1])}
STUB_PARAMS = {"tau": 0.5, "temperature": 2.0, "lambda_proto": 0.5, "lambda_feat": 2.0, "lambda_head": 3.0}


def _softmax(v):
    e = [math.exp(x) for x in v]
    return [x / sum(e) for x in e]


def _kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def _by_hand(uncertainty=True):
    """The terms of (U3)-(U7) for STUB_BATCH and STUB_PARAMS, with math only."""
    r = 1 / math.sqrt(2)
    tau, t = 0.5, 2.0
    # (U2) cosines: teacher (1, 0) and (r, r); student (r, r) and (0, 1)
    q = [[1 / tau, 0.0], [r / tau, r / tau]]
    s = [[r / tau, r / tau], [0.0, 1 / tau]]
    # (U3) w = 1 - H(softmax(q)) / log 2: sample 1 is halfway (H = log 2, w = 0)
    p0 = _softmax(q[0])
    w = [1 - (-sum(x * math.log(x) for x in p0)) / math.log(2), 0.0] if uncertainty else [1.0, 1.0]
    # (U4) KL(softmax(q) || softmax(s)); (U5) 1 - cos(g(z_s), z_t) = 1 - r for both samples
    kl = [_kl(_softmax(q[i]), _softmax(s[i])) for i in range(2)]
    proto = sum(w[i] * kl[i] for i in range(2)) / 2
    feat = sum(w[i] * (1 - r) for i in range(2)) / 2
    # (U6) identity head: y_{t|s} = g(z_s), y_t = z_t; T^2 KL(softmax(y_t / T) || softmax(y_{t|s} / T)), batch mean
    head = t * t * (_kl(_softmax([1.0, 0.0]), _softmax([0.5, 0.5])) + _kl(_softmax([0.5, 0.5]), _softmax([0.0, 1.5]))) / 2
    # L_task: the student's logits are z_s, labels (0, 1)
    task = (math.log(2) + math.log(1 + math.exp(-3))) / 2
    return {"task": task, "proto": 0.5 * proto, "feat": 2.0 * feat, "head": 3.0 * head}


def test_the_total_is_the_docstrings_sum_by_hand():
    """(U7) L = L_task + lambda_proto L_proto + lambda_feat L_feat + lambda_head L_head, each term
    by hand on a two-sample batch (lambdas 0.5, 2, 3 so that a lost lambda shows)."""
    for uncertainty in (True, False):
        m = _stub_method({**STUB_PARAMS, "uncertainty": uncertainty})
        _, terms = m.training_step(STUB_BATCH)
        want = _by_hand(uncertainty)
        assert set(terms) == set(want)
        for k, v in want.items():
            assert float(terms[k].detach()) == pytest.approx(v, rel=1e-12), (uncertainty, k)
        assert float(sum(terms.values()).detach()) == pytest.approx(sum(want.values()), rel=1e-12)
    # the uncertainty weight of the halfway sample is 0: the weighted terms differ from the unweighted ones
    assert _by_hand(True)["feat"] < _by_hand(False)["feat"]


@pytest.mark.parametrize("switch", ["proto", "feat", "head"])
def test_a_switch_drops_its_term_and_nothing_else_by_hand(switch):
    m = _stub_method({**STUB_PARAMS, switch: False})
    _, terms = m.training_step(STUB_BATCH)
    want = {k: v for k, v in _by_hand().items() if k != switch}
    assert set(terms) == set(want)
    for k, v in want.items():
        assert float(terms[k].detach()) == pytest.approx(v, rel=1e-12), k
    assert float(sum(terms.values()).detach()) == pytest.approx(sum(want.values()), rel=1e-12)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_each_switch_on_the_networks_removes_its_term_exactly(task):
    """On the face and EEG networks and a fixed batch: a switch off removes its term from the loss
    terms (so from history.csv) and leaves every other term bit for bit; uncertainty: false keeps
    every term and changes the weighted ones only."""
    part = _data(regression=task == "regression")
    batch = part.batch(torch.arange(8), "cpu")

    def terms_of(params):
        m, _ = _method(task, params)
        m.configure(parts={"train": part}, device=torch.device("cpu"))
        m.eval()
        _, terms = m.training_step(batch)
        return {k: float(v.detach()) for k, v in terms.items()}

    full = terms_of({})
    assert set(full) == {"task", "proto", "feat", "head"} and all(v > 0 for v in full.values())
    for switch in ("proto", "feat", "head"):
        off = terms_of({switch: False})
        assert set(off) == set(full) - {switch}, switch
        assert off == {k: v for k, v in full.items() if k != switch}, switch
    flat = terms_of({"uncertainty": False})
    assert set(flat) == set(full) and flat["task"] == full["task"] and flat["head"] == full["head"]
    assert flat["feat"] != full["feat"] and flat["proto"] != full["proto"]


def test_a_switched_off_term_has_no_history_column():
    """Through the training loop's epoch (cmkd.train.train_steps): the summed terms, whose keys are
    the train_<term> columns of history.csv, hold no entry for a term switched off."""
    part = _data()
    cols = {}
    for params in ({}, {"proto": False}, {"feat": False, "head": False}):
        m, _ = _method("classification", params)
        opt = torch.optim.Adam(m.trainable_parameters(), lr=1e-3)
        m.configure(parts={"train": part}, device=torch.device("cpu"), optimizer=opt)
        m.train()
        data = SimpleNamespace(amp=Amp("off", "cpu"), spec={"training": {"batch_size": 12}, "method": "uaproto"},
                               parts={"train": part}, device=torch.device("cpu"), tag="t")
        sums, nb = train_steps(data, SimpleNamespace(method=m, optimizer=opt), torch.arange(len(part)), 1, [], Path("."))
        assert nb == 2
        cols[tuple(params)] = {k for k in sums if not k.startswith("diag_")}
    assert cols[()] == {"task", "proto", "feat", "head", "total"}
    assert cols[("proto",)] == {"task", "feat", "head", "total"}
    assert cols[("feat", "head")] == {"task", "proto", "total"}
