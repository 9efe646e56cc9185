"""CDGKD: the prototype-rebalancing teacher (§3.1, eqs. 1-6) and the densely guided KD (§3.2, eqs. 7-9).

Expected values are computed with plain Python arithmetic (math.exp/log), not with the torch
expressions under test.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from torch import nn

from cmkd.errors import ConfigError
from cmkd.methods.base import RunContext
from cmkd.methods.cdgkd import CDGKD
from cmkd.methods.proto_teacher import ProtoTeacher
from cmkd.models.base import Output
from cmkd.models.registry import build_model
from cmkd.models.tsception import DEAP_CHANNELS
from cmkd.train import Part

# ------------------------------------------------------------------ helpers
EEG_INFO = {"shape": [32, 128], "sampling_rate": 32, "channel_names": list(DEAP_CHANNELS)}
FACE_INFO = {"shape": [1, 3, 32, 32]}


def tiny_spec(modalities=("face", "eeg"), num_S=4, dropout=0.0):
    enc = {"face": {"name": "timm", "arch": "test_convnext3"}, "eeg": {"name": "tsception", "num_T": 4, "num_S": num_S}}
    inputs = {"face": FACE_INFO, "eeg": EEG_INFO}
    return {"modalities": list(modalities), "encoders": {m: enc[m] for m in modalities},
            "inputs": {m: inputs[m] for m in modalities}, "head": {"hidden": 8, "dropout": dropout}, "n_outputs": 2}


def tiny_batch(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"face": torch.randint(0, 256, (n, 1, 3, 32, 32), generator=g, dtype=torch.uint8),
            "eeg": torch.randn(n, 32, 128, generator=g),
            "y": torch.tensor([0, 1] * (n // 2)), "index": torch.arange(n)}


class Stub(nn.Module):
    """Returns the batch's fixed features and ``scale * logits`` (one parameter, for gradients)."""

    modalities = ["face", "eeg"]

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, batch):
        return Output(batch["logits"] * self.scale, {"face": batch["zf"], "eeg": batch["ze"]})


def py_log_softmax_true(row, k):
    m = max(row)
    return row[k] - m - math.log(sum(math.exp(v - m) for v in row))


def py_proto_p(z, c, k):
    """eq. (2) at class k: exp(-d_k) / sum exp(-d_k'), d = squared Euclidean distance."""
    d = [sum((a - b) ** 2 for a, b in zip(z, ck)) for ck in c]
    return math.exp(-d[k]) / sum(math.exp(-dk) for dk in d)


def py_lambdas(r_v, r_e):
    """eq. (6) written out."""
    rho = r_e / r_v
    if rho > 1:
        return min(max(rho - 1, 0.0), 1.0), 0.0
    return 0.0, min(max(r_v / r_e - 1, 0.0), 1.0)


ZF = [[0.0, 0.0], [1.0, 1.0], [0.2, -0.1], [0.8, 1.3]]  # visual features: well clustered
ZE = [[0.4, 0.1], [0.3, 0.5], [0.1, 0.6], [0.6, 0.2]]    # EEG features: poorly clustered
CF = [[0.1, 0.0], [0.9, 1.1]]
CE = [[0.3, 0.3], [0.4, 0.4]]
LOGITS = [[0.5, -0.2], [0.1, 0.3], [1.0, 0.0], [-0.4, 0.2]]
Y = [0, 1, 0, 1]


def stub_batch():
    return {"zf": torch.tensor(ZF), "ze": torch.tensor(ZE), "logits": torch.tensor(LOGITS), "y": torch.tensor(Y)}


def expected_teacher_loss(alpha):
    pf = [py_proto_p(z, CF, k) for z, k in zip(ZF, Y)]
    pe = [py_proto_p(z, CE, k) for z, k in zip(ZE, Y)]
    r_v, r_e = sum(pf), sum(pe)
    lam_v, lam_e = py_lambdas(r_v, r_e)
    l_v = -sum(math.log(p) for p in pf) / 4
    l_e = -sum(math.log(p) for p in pe) / 4
    ce = -sum(py_log_softmax_true(row, k) for row, k in zip(LOGITS, Y)) / 4
    return (1 - alpha) * ce + alpha * (lam_v * l_v + lam_e * l_e), (lam_v, lam_e, r_v, r_e)


# ------------------------------------------------------------------ §3.1 teacher
@pytest.mark.parametrize("alpha", [0.5, 0.0, 1.0])
def test_proto_teacher_loss_matches_hand_computation(alpha):
    m = ProtoTeacher(Stub(), {}, {"alpha": alpha}, "classification", 2)
    m.prototypes = {"face": torch.tensor(CF), "eeg": torch.tensor(CE)}
    _, terms = m.training_step(stub_batch())
    want, (lam_v, lam_e, r_v, r_e) = expected_teacher_loss(alpha)
    assert float(sum(terms.values()).detach()) == pytest.approx(want, rel=1e-5)
    assert m.diagnostics["r_v"] == pytest.approx(r_v, rel=1e-5)
    assert m.diagnostics["r_e"] == pytest.approx(r_e, rel=1e-5)
    assert (m.diagnostics["lambda_v"], m.diagnostics["lambda_e"]) == pytest.approx((lam_v, lam_e), rel=1e-5)


def test_faster_modality_gets_zero_weight():
    m = ProtoTeacher(Stub(), {}, {"alpha": 0.5}, "classification", 2)
    m.prototypes = {"face": torch.tensor(CF), "eeg": torch.tensor(CE)}
    _, terms = m.training_step(stub_batch())
    d = m.diagnostics
    assert d["r_v"] > d["r_e"]  # the visual features sit on their prototypes: visual is faster
    assert d["lambda_v"] == 0.0 and d["lambda_e"] > 0.0
    assert float(terms["proto_v"]) == 0.0 and float(terms["proto_e"]) > 0.0
    # swap the modalities: now EEG is the faster one and gets 0
    b = stub_batch()
    b["zf"], b["ze"] = b["ze"], b["zf"]
    m.prototypes = {"face": torch.tensor(CE), "eeg": torch.tensor(CF)}
    m.training_step(b)
    assert m.diagnostics["lambda_e"] == 0.0 and m.diagnostics["lambda_v"] > 0.0


def test_proto_teacher_bad_params():
    with pytest.raises(ConfigError, match="alpha"):
        ProtoTeacher(Stub(), {}, {"alpha": 1.5}, "classification", 2)
    with pytest.raises(ConfigError, match="prototype_update"):
        ProtoTeacher(Stub(), {}, {"prototype_update": "never"}, "classification", 2)
    with pytest.raises(ConfigError, match="classification"):
        ProtoTeacher(Stub(), {}, {}, "regression", 1)
    # a network without the named modality: one error naming the config key of the parameter
    from cmkd.methods.base import RunContext

    with pytest.raises(ConfigError, match=r"^methods\.tp\.params\.eeg: modality 'eog' is not one of"):
        ProtoTeacher(Stub(), {}, {"eeg": "eog"}, "classification", 2, context=RunContext(key="tp"))
    with pytest.raises(ConfigError, match=r"^methods\.tp: prototypes need class labels"):
        ProtoTeacher(Stub(), {}, {}, "regression", 1, context=RunContext(key="tp"))


def _part(n=12, seed=0):
    b = tiny_batch(n, seed)
    return Part(x={"face": b["face"], "eeg": b["eeg"]}, y=b["y"], index=np.arange(n))


def test_epoch_prototypes_are_class_means_of_eval_features():
    torch.manual_seed(0)
    net = build_model(tiny_spec(dropout=0.5))
    m = ProtoTeacher(net, {}, {"alpha": 0.5, "eval_batch_size": 5}, "classification", 2)  # 5: several batches
    part = _part()
    opt = torch.optim.Adam(m.trainable_parameters(), lr=1e-2)
    m.configure(parts={"train": part}, device=torch.device("cpu"), optimizer=opt)
    m.train()
    m.on_epoch_start(1, torch.Generator().manual_seed(0))
    assert m.student.training  # the pass restores training mode
    net.eval()
    with torch.no_grad():
        out = net({"face": part.x["face"], "eeg": part.x["eeg"]})
    net.train()
    y = part.y.numpy()
    for mod in ("face", "eeg"):
        f = out.features[mod].numpy().astype(np.float64)
        want = np.stack([f[y == k].mean(axis=0) for k in (0, 1)])
        np.testing.assert_allclose(m.prototypes[mod].numpy(), want, rtol=1e-4, atol=1e-5)
    # a step changes the encoders; the next epoch's prototypes follow them
    before = {k: v.clone() for k, v in m.prototypes.items()}
    _, terms = m.training_step(part.batch(torch.arange(12), "cpu"))
    opt.zero_grad()
    sum(terms.values()).backward()
    opt.step()
    assert torch.equal(m.prototypes["face"], before["face"])  # fixed within the epoch
    m.on_epoch_start(2, torch.Generator().manual_seed(0))
    assert not torch.allclose(m.prototypes["face"], before["face"])


def test_ema_prototypes_update_with_batch_class_means():
    m = ProtoTeacher(Stub(), {}, {"alpha": 0.5, "prototype_update": "ema", "momentum": 0.75}, "classification", 2)
    m.prototypes = {"face": torch.tensor(CF), "eeg": torch.tensor(CE)}
    m.train()
    m.training_step(stub_batch())
    # class 0 = samples 0, 2; class 1 = samples 1, 3
    for mod, z, c in (("face", ZF, CF), ("eeg", ZE, CE)):
        for k, (i, j) in enumerate(((0, 2), (1, 3))):
            for d in range(2):
                mean = (z[i][d] + z[j][d]) / 2
                assert float(m.prototypes[mod][k, d]) == pytest.approx(0.75 * c[k][d] + 0.25 * mean, rel=1e-6)


# ------------------------------------------------------------------ §3.2 densely guided KD
class ConstNet(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.register_buffer("l", torch.tensor(logits))

    def forward(self, batch):
        return Output(self.l.expand(len(batch["y"]), -1), {})


def _cdgkd(params=None, n_guides=3, seed=0):
    guides = {r: ConstNet([float(i), -float(i)]) for i, r in enumerate(["teacher", "ta1", "ta2"][:n_guides])}
    m = CDGKD(Stub(), guides, params or {}, "classification", 2, context=RunContext(seed=seed))
    m.on_epoch_start(1, torch.Generator().manual_seed(seed))
    return m


def _keeps(m, n=40):
    return [tuple(m.sample_keep()) for _ in range(n)]


def test_stochastic_subsets_reproducible_and_seed_dependent():
    a, b, c = _keeps(_cdgkd(seed=0)), _keeps(_cdgkd(seed=0)), _keeps(_cdgkd(seed=1))
    assert a == b
    assert a != c
    pl = _keeps(_cdgkd({"drop_rule": "per_level"}, seed=0))
    assert all(any(k) for k in pl)  # per_level, several guides: never empty
    assert len(set(a)) > 2  # genuinely random subsets
    assert any(not all(k) for k in a)


def test_stochastic_off_uses_all_guides():
    m = _cdgkd({"stochastic": False})
    assert all(all(k) for k in _keeps(m))
    b = stub_batch()
    _, terms = m.training_step(b)
    assert m.diagnostics["n_guides"] == 3.0


def test_cdgkd_loss_matches_hand_computation():
    """eq. (9), T = 1, all guides, kl_direction guide_current: (1-b) CE + b * mean_j KL(p_j || p_s)."""
    beta = 0.3
    m = _cdgkd({"stochastic": False, "beta": beta, "kl_direction": "guide_current"})
    _, terms = m.training_step(stub_batch())
    ce = -sum(py_log_softmax_true(row, k) for row, k in zip(LOGITS, Y)) / 4

    def softmax(row):
        e = [math.exp(v) for v in row]
        return [v / sum(e) for v in e]

    kls = []
    for i in range(3):
        pt = softmax([float(i), -float(i)])
        kl = sum(sum(pt[c] * (math.log(pt[c]) - math.log(softmax(row)[c])) for c in range(2)) for row in LOGITS) / 4
        kls.append(kl)
    want = (1 - beta) * ce + beta * sum(kls) / 3
    assert float(sum(terms.values()).detach()) == pytest.approx(want, rel=1e-5)
    # with a subset: the mean runs over the kept guides only
    m2 = _cdgkd({"beta": beta, "kl_direction": "guide_current"}, seed=3)
    for _ in range(10):
        _, terms = m2.training_step(stub_batch())
        kept = [kl for kl, k in zip(kls, m2.last_keep) if k]
        kd = sum(kept) / len(kept) if kept else 0.0  # drop_rule authors: an empty set skips the KD term
        assert float(sum(terms.values()).detach()) == pytest.approx((1 - beta) * ce + beta * kd, rel=1e-5)


def test_kl_direction_switches_the_computed_kl():
    """eq. (9) writes KL(current || guide): by hand, one sample, p_s = softmax(0.5, -0.2) and the
    guide p_g = softmax(1, -1); the default is that direction, ``guide_current`` the reverse."""
    import math as _m

    s_row, g_row = [0.5, -0.2], [1.0, -1.0]
    zs = _m.exp(0.5) + _m.exp(-0.2)
    ps = [_m.exp(0.5) / zs, _m.exp(-0.2) / zs]
    zg = _m.exp(1.0) + _m.exp(-1.0)
    pg = [_m.exp(1.0) / zg, _m.exp(-1.0) / zg]
    kl_sg = ps[0] * _m.log(ps[0] / pg[0]) + ps[1] * _m.log(ps[1] / pg[1])  # KL(p_s || p_g)
    kl_gs = pg[0] * _m.log(pg[0] / ps[0]) + pg[1] * _m.log(pg[1] / ps[1])  # KL(p_g || p_s)
    assert abs(kl_sg - kl_gs) > 0.01  # the two directions differ here
    s = torch.tensor([s_row], dtype=torch.float64)
    g = torch.tensor([g_row], dtype=torch.float64)
    from cmkd import losses

    assert float(losses.kl_current_guide(s, g)) == pytest.approx(kl_sg, rel=1e-10)
    assert float(losses.dgkd(s, [g], 1.0, [True], "current_guide")) == pytest.approx(kl_sg, rel=1e-10)
    assert float(losses.dgkd(s, [g], 1.0, [True], "guide_current")) == pytest.approx(kl_gs, rel=1e-10)
    # T = 2: T^2 * KL(softmax(s/2) || softmax(g/2))
    zs2 = _m.exp(0.25) + _m.exp(-0.1)
    ps2 = [_m.exp(0.25) / zs2, _m.exp(-0.1) / zs2]
    zg2 = _m.exp(0.5) + _m.exp(-0.5)
    pg2 = [_m.exp(0.5) / zg2, _m.exp(-0.5) / zg2]
    want2 = 4 * sum(a * _m.log(a / b) for a, b in zip(ps2, pg2))
    assert float(losses.kl_current_guide(s, g, 2.0)) == pytest.approx(want2, rel=1e-10)
    # through the method: the kd term is beta * KL in the configured direction (default: the equation's)
    b = {"zf": torch.zeros(1, 2), "ze": torch.zeros(1, 2), "logits": torch.tensor([s_row]), "y": torch.tensor([0])}
    for params, want in (({}, kl_sg), ({"kl_direction": "current_guide"}, kl_sg), ({"kl_direction": "guide_current"}, kl_gs)):
        m = CDGKD(Stub(), {"teacher": ConstNet(g_row)}, {"stochastic": False, "beta": 1.0, **params}, "classification", 2)
        _, terms = m.training_step(b)
        assert float(terms["kd"].detach()) == pytest.approx(want, rel=1e-5)
    with pytest.raises(ConfigError, match="kl_direction"):
        _cdgkd({"kl_direction": "student_teacher"})


@pytest.mark.parametrize("n_guides", [1, 2, 3])
def test_authors_drop_rule_allows_an_empty_guide_set_at_every_level(n_guides):
    """The default drop rule (``authors``): at every level (TA 1: one guide, TA 2: two, the
    student: three) each guide is kept independently with probability keep_prob and nothing is
    restored, so the empty set occurs with probability (1 - keep_prob)^n and each guide's keep
    rate is keep_prob. Over 4000 draws of a fixed generator the observed rates lie within 4.5
    binomial standard errors of those values."""
    n = 4000
    m = _cdgkd({}, n_guides=n_guides, seed=0)
    assert m.params["drop_rule"] == "authors" and m.min_keep == 0
    keeps = _keeps(m, n)
    for p_keep in (0.5,):
        p_empty = (1 - p_keep) ** n_guides
        empty = sum(not any(k) for k in keeps) / n
        assert abs(empty - p_empty) < 4.5 * math.sqrt(p_empty * (1 - p_empty) / n), (empty, p_empty)
        for j in range(n_guides):
            rate = sum(k[j] for k in keeps) / n
            assert abs(rate - p_keep) < 4.5 * math.sqrt(p_keep * (1 - p_keep) / n), (j, rate)
    # the earlier rule, kept as a named option: only a single-guide level may drop all of its guides
    pl = _cdgkd({"drop_rule": "per_level"}, n_guides=n_guides, seed=0)
    pl_keeps = _keeps(pl, 600)
    if n_guides == 1:
        assert pl.min_keep == 0 and any(k == (False,) for k in pl_keeps)
    else:
        assert pl.min_keep == 1 and all(any(k) for k in pl_keeps)
    # an explicit min_keep overrides the rule
    assert all(any(k) for k in _keeps(_cdgkd({"min_keep": 1}, n_guides=n_guides, seed=0), 600))


def test_cdgkd_drop_rule_is_checked():
    with pytest.raises(ConfigError, match="drop_rule"):
        _cdgkd({"drop_rule": "keep_one"})


def test_single_guide_ta_drops_its_guide_with_min_keep_0():
    """TA 1 has one guide: with min_keep 0 (the authors' rule's floor) the stochastic strategy drops
    it on some batches (the KD term is then skipped), with min_keep 1 it never does."""
    ta1 = _cdgkd({"min_keep": 0}, n_guides=1, seed=0)
    keeps = _keeps(ta1, 60)
    assert any(k == (False,) for k in keeps) and any(k == (True,) for k in keeps)
    ta1_forced = _cdgkd({"min_keep": 1}, n_guides=1, seed=0)
    assert all(k == (True,) for k in _keeps(ta1_forced, 60))
    # a batch without a guide: kd is exactly zero (skipped) and the loss is (1 - beta) CE, backward works
    beta = 0.5
    ce = -sum(py_log_softmax_true(row, k) for row, k in zip(LOGITS, Y)) / 4
    seen_drop = False
    for _ in range(30):
        _, terms = ta1.training_step(stub_batch())
        if ta1.last_keep == [False]:
            seen_drop = True
            assert float(terms["kd"].detach()) == 0.0
            assert float(sum(terms.values()).detach()) == pytest.approx((1 - beta) * ce, rel=1e-6)
            sum(terms.values()).backward()
            assert ta1.diagnostics["n_guides"] == 0.0
    assert seen_drop
    with pytest.raises(ConfigError, match="min_keep"):
        _cdgkd({"min_keep": 2}, n_guides=1)


def test_cdgkd_bad_params():
    with pytest.raises(ConfigError, match="beta"):
        _cdgkd({"beta": 2})
    with pytest.raises(ConfigError, match=r"^methods\.cdgkd_x\.requires: CDGKD needs"):  # the run's config key
        CDGKD(Stub(), {}, {}, "classification", 2, context=RunContext(key="cdgkd_x"))


# ------------------------------------------------------------------ the TA chain is the DAG
CHAIN = {
    "teacher_proto": {"class": "proto_teacher", "modalities": "teacher", "params": {"alpha": 0.5}},
    "cdgkd_ta1": {"class": "cdgkd", "modalities": "teacher", "encoders": {"eeg": {"num_T": 3, "num_S": 3}},
                  "requires": {"teacher": "teacher_proto"}},
    "cdgkd_ta2": {"class": "cdgkd", "modalities": "teacher", "encoders": {"eeg": {"num_T": 2, "num_S": 2}},
                  "requires": {"teacher": "teacher_proto", "ta1": "cdgkd_ta1"}},
    "cdgkd": {"class": "cdgkd", "modalities": "student",
              "requires": {"teacher": "teacher_proto", "ta1": "cdgkd_ta1", "ta2": "cdgkd_ta2"}},
}


def test_ta_chain_builds_the_dag(tmp_path, snakemake_runner):
    from conftest import tiny_config

    cfg = tiny_config()
    cfg["methods"].update(CHAIN)
    cfg["seeds"] = [0]
    cfg["experiments"][0]["methods"] = ["cdgkd"]
    cfg["tables"] = []  # the default tables name methods this experiment does not run
    r = snakemake_runner(tmp_path, "-n", config=cfg, timeout=120)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    out = r.stdout + r.stderr
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule )", out):
        mo = re.search(r"output: (\S+?)/metrics\.json", block)
        mi = re.search(r"input: ([^\n]+)", block)
        if block.startswith(("rule train", "localrule train")) and mo and mi:
            jobs[mo.group(1).rsplit("/", 2)[-2]] = [s.strip() for s in mi.group(1).split(",")]
    assert set(jobs) == {"teacher_proto", "cdgkd_ta1", "cdgkd_ta2", "cdgkd"}, out[-3000:]

    def models(name):
        return sorted(p.split("/")[-3] for p in jobs[name] if p.endswith("model.pt"))

    assert models("cdgkd") == ["cdgkd_ta1", "cdgkd_ta2", "teacher_proto"]
    assert models("cdgkd_ta2") == ["cdgkd_ta1", "teacher_proto"]
    assert models("cdgkd_ta1") == ["teacher_proto"]
    assert models("teacher_proto") == []


def test_subset_seed_falls_back_to_the_loop_generator():
    def keeps(seed):
        guides = {r: ConstNet([0.0, 0.0]) for r in ("teacher", "ta1", "ta2")}
        m = CDGKD(Stub(), guides, {}, "classification", 2)  # no run_seed
        m.on_epoch_start(1, torch.Generator().manual_seed(seed))
        return _keeps(m)

    assert keeps(5) == keeps(5)
    assert keeps(5) != keeps(6)
