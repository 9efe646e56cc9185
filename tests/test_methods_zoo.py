"""The classic KD zoo as cross-modal methods: FitNets, NST, SP, RKD, PKT, CRD and DGKD (with
TAKD as a chain of KD runs).

Every method is built with a tiny face student and a tiny face+EEG teacher, trained on tiny
synthetic batches, and checked against hand computations (plain Python arithmetic on stub
networks whose outputs we fix), and the whole zoo runs in a tiny Snakemake workflow.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from cmkd.errors import ConfigError
from cmkd.methods import REGISTRY, method_class
from cmkd.methods.base import RunContext
from cmkd.models.base import Output
from cmkd.models.tsception import DEAP_CHANNELS
from cmkd.methods.zoo_common import match_spatial
from cmkd.train import Part

ZOO = ["fitnets", "nst", "sp", "rkd", "pkt", "crd"]
N_TRAIN = 24
B = 12

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- tiny networks and data
def _spec(mods, n_outputs=2, face_px=64):
    inputs = {"eeg": {"shape": [32, 128], "sampling_rate": 32, "channel_names": list(DEAP_CHANNELS)},
              "face": {"shape": [1, 3, face_px, face_px]}}
    enc = {"eeg": {"name": "tsception", "num_T": 4, "num_S": 4, "dropout": 0.0},
           "face": {"name": "timm", "arch": "test_convnext3"}}
    return {"modalities": mods, "encoders": {m: enc[m] for m in mods}, "inputs": {m: inputs[m] for m in mods},
            "head": {"hidden": 16, "dropout": 0.0}, "n_outputs": n_outputs}


def _nets(seed=0, n_outputs=2, face_px=64):
    from cmkd.models.registry import build_model

    torch.manual_seed(seed)
    student = build_model(_spec(["face"], n_outputs, face_px))
    teacher = build_model(_spec(["face", "eeg"], n_outputs, face_px))
    return student, teacher


def _parts(n=N_TRAIN, regression=False, face_px=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = {"face": torch.randint(0, 256, (n, 1, 3, face_px, face_px), generator=g, dtype=torch.uint8),
         "eeg": torch.randn(n, 32, 128, generator=g)}
    y = torch.rand(n, generator=g) if regression else torch.randint(0, 2, (n,), generator=g)
    return {"train": Part(x=x, y=y, index=np.arange(n))}


def _method(name, params=None, task="classification", seed=0, parts=None, key=None):
    """Build as train.run does: method, optimiser over trainable_parameters(), then configure()."""
    n_out = 1 if task == "regression" else 2
    student, teacher = _nets(seed, n_out)
    m = method_class(name)(student, {"teacher": teacher}, params or {}, task, n_out, context=RunContext(key=key))
    opt = torch.optim.Adam(m.trainable_parameters(), lr=3e-3)
    parts = parts or _parts(regression=task == "regression")
    if hasattr(m, "configure"):
        m.configure(parts=parts, device=torch.device("cpu"), optimizer=opt)
    return m, opt, parts, teacher


def _ids(params):
    return {id(p) for p in params}


# ----------------------------------------------------------------------------- every method trains
@pytest.mark.parametrize("name", ZOO)
def test_zoo_method_trains_and_loss_decreases(name):
    m, opt, parts, teacher = _method(name)
    batch = parts["train"].batch(torch.arange(B), torch.device("cpu"))
    m.train()
    m.on_epoch_start(1, torch.Generator().manual_seed(0))
    totals, feats = [], []
    for _ in range(20):
        logits, terms = m.training_step(batch)
        assert logits.shape == (B, 2)
        assert set(terms) == {"ce", name}, terms.keys()
        assert all(v.dim() == 0 and torch.isfinite(v) for v in terms.values()), terms
        total = sum(terms.values())
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        totals.append(float(total.detach()))
        feats.append(float(terms[name].detach()))
    assert np.mean(totals[-3:]) < totals[0], totals
    assert np.mean(feats[-3:]) < feats[0], feats  # the distillation term itself is learnt
    # the teacher network is frozen and outside the optimiser
    trainable = _ids(m.trainable_parameters())
    assert not (_ids(teacher.parameters()) & trainable)
    assert all(not p.requires_grad for p in teacher.parameters())
    assert _ids(m.student.parameters()) <= trainable
    in_opt = _ids(p for g in opt.param_groups for p in g["params"])
    assert trainable == in_opt  # what configure() built was handed to the optimiser
    assert not teacher.training  # stays in eval mode under method.train()


def test_method_modules_are_trainable_and_not_the_teacher():
    fit, _, _, _ = _method("fitnets")
    assert _ids(fit.regressor.parameters()) <= _ids(fit.trainable_parameters())
    assert isinstance(fit.regressor, nn.Conv1d)
    crd, _, _, teacher = _method("crd")
    trainable = _ids(crd.trainable_parameters())
    assert _ids(crd.embed_s.parameters()) <= trainable
    assert _ids(crd.embed_t.parameters()) <= trainable  # CRD trains the teacher's embedding head
    assert not (_ids(teacher.parameters()) & trainable)
    for name in ("nst", "sp", "rkd", "pkt"):
        m, _, _, _ = _method(name)
        assert _ids(m.trainable_parameters()) == _ids(m.student.parameters())


@pytest.mark.parametrize("name", ZOO + ["dgkd"])
def test_regression_step_is_finite(name):
    n_out = 1
    student, teacher = _nets(0, n_out)
    m = method_class(name)(student, {"teacher": teacher}, {}, "regression", n_out)
    parts = _parts(regression=True)
    opt = torch.optim.Adam(m.trainable_parameters(), lr=1e-3)
    if hasattr(m, "configure"):
        m.configure(parts=parts, device=torch.device("cpu"), optimizer=opt)
    m.train()
    m.on_epoch_start(1, torch.Generator().manual_seed(0))
    _, terms = m.training_step(parts["train"].batch(torch.arange(B), torch.device("cpu")))
    total = sum(terms.values())
    assert torch.isfinite(total)
    total.backward()


def test_fitnets_variants_cross_modal_shapes():
    # the face student's 2-d hint (128, 2, 2) against the teacher's 1-d EEG hint (4, L)
    m, opt, parts, _ = _method("fitnets", {"teacher_feature": "hint_eeg"})
    batch = parts["train"].batch(torch.arange(B), torch.device("cpu"))
    out = m.student(batch)
    assert out.features["hint"].shape[1:] == (128, 2, 2)
    assert m.regressor.in_channels == 128 and m.regressor.out_channels == 4
    _, terms = m.training_step(batch)
    assert torch.isfinite(terms["fitnets"])
    e, _, _, _ = _method("fitnets", {"feature": "embedding"})
    assert isinstance(e.regressor, nn.Linear) and (e.regressor.in_features, e.regressor.out_features) == (16, 16)
    _, terms = e.training_step(batch)
    assert torch.isfinite(terms["fitnets"])
    with pytest.raises(ConfigError, match=r"params.teacher_feature: the teacher network outputs no feature 'no_such'"):
        _method("fitnets", {"teacher_feature": "no_such"})


def test_nst_warns_on_single_position_maps():
    from cmkd.models.registry import build_model

    student, teacher = build_model(_spec(["face"], face_px=32)), build_model(_spec(["face", "eeg"], face_px=32))
    m = method_class("nst")(student, {"teacher": teacher}, {}, "classification", 2)
    with pytest.warns(UserWarning, match="single spatial position"):
        m.configure(parts=_parts(face_px=32), device=torch.device("cpu"), optimizer=None)


def test_training_step_before_configure_is_an_error():
    student, teacher = _nets()
    m = method_class("fitnets")(student, {"teacher": teacher}, {}, "classification", 2)
    with pytest.raises(RuntimeError, match="configure"):
        m.training_step(_parts()["train"].batch(torch.arange(4), torch.device("cpu")))


# ----------------------------------------------------------------------------- CRD memory
def test_crd_memory_sized_to_training_part_and_k_adapts():
    parts = _parts(n=N_TRAIN)
    m, _, _, _ = _method("crd", parts=parts)
    assert m.memory.n_data == len(parts["train"]) == N_TRAIN
    assert m.memory.memory_student.shape == (N_TRAIN, 128) == m.memory.memory_teacher.shape
    assert m.memory.k == N_TRAIN - 1  # nce_k 4096 capped at n_data - 1
    m, _, _, _ = _method("crd", {"nce_k": 5, "feat_dim": 8}, parts=parts)
    assert m.memory.k == 5 and m.memory.feat_dim == 8
    assert math.isclose(m.memory.momentum, 0.5) and math.isclose(m.params["nce_t"], 0.07)
    assert math.isclose(m.params["beta"], 0.8)
    # the memory is written at batch["index"] in training mode only
    batch = parts["train"].batch(torch.arange(4), torch.device("cpu"))
    before = m.memory.memory_student.clone()
    m.train()
    m.training_step(batch)
    changed = (m.memory.memory_student != before).any(dim=1)
    assert changed[:4].all() and not changed[4:].any()


@pytest.mark.parametrize("name", ["crd", "cmcrd"])
def test_crd_negatives_never_share_the_anchor_class(name):
    """Class-aware negatives (the default for classification; CMCRD inherits it): no negative of an
    anchor has the anchor's class; ``negatives: uniform`` keeps the old draw, where they do."""
    parts = _parts(n=N_TRAIN)
    y = parts["train"].y
    assert 0 < int(y.sum()) < N_TRAIN
    torch.manual_seed(0)
    m, _, _, _ = _method(name, {"nce_k": 16}, parts=parts)
    idx = torch.arange(N_TRAIN)
    for _ in range(5):
        c = m.memory.sample(idx)
        assert torch.equal(c[:, 0], idx)
        assert (y[c[:, 1:]] != y[idx].unsqueeze(1)).all()
        assert (c[:, 1:] != idx.unsqueeze(1)).all()
    # every other-class sample can be drawn (uniform over the other class)
    pool = set(torch.nonzero(y != y[0]).squeeze(1).tolist())
    many = set()
    for _ in range(50):
        many |= set(m.memory.sample(torch.tensor([0]))[0, 1:].tolist())
    assert many == pool
    # the training step runs on these negatives
    m.train()
    _, terms = m.training_step(parts["train"].batch(torch.arange(8), torch.device("cpu")))
    assert torch.isfinite(sum(terms.values()))
    m_u, _, _, _ = _method(name, {"nce_k": 16, "negatives": "uniform"}, parts=parts)
    c = m_u.memory.sample(idx)
    assert (y[c[:, 1:]] == y[idx].unsqueeze(1)).any()


def test_crd_class_negatives_need_classes():
    with pytest.raises(ConfigError, match=r"^methods\.crd_x\.params\.negatives: 'class'"):  # the run's key
        _method("crd", {"negatives": "class"}, task="regression", key="crd_x")
    m, _, _, _ = _method("crd", {"nce_k": 4}, task="regression")  # auto: uniform for regression
    assert m.memory.labels is None
    with pytest.raises(ConfigError, match="negatives"):
        _method("crd", {"negatives": "sometimes"})


# ----------------------------------------------------------------------------- hand computations
def test_match_spatial_hand():
    # same rank: (1, 1, 4) vs (1, 1, 2) -> both length 2; the longer is averaged in pairs
    s = torch.tensor([[[1.0, 3.0, 5.0, 7.0]]])
    t = torch.tensor([[[2.0, 4.0]]])
    ps, pt = match_spatial(s, t)
    assert ps.tolist() == [[[2.0, 6.0]]] and pt.tolist() == [[[2.0, 4.0]]]
    # 2-d (2 x 2) vs 1-d (length 2): row-major flatten [a, b, c, d] -> [(a+b)/2, (c+d)/2]
    s2 = torch.tensor([[[[1.0, 2.0], [3.0, 5.0]]]])
    t1 = torch.tensor([[[9.0, 9.0]], [[0.0, 0.0]]])[:1]
    ps, pt = match_spatial(s2, t1)
    assert ps.tolist() == [[[1.5, 4.0]]] and pt.shape == (1, 1, 2)
    # 2-d same rank, element-wise smaller size: (4, 2) vs (2, 4) -> (2, 2)
    a = torch.arange(8.0).reshape(1, 1, 4, 2)
    b = torch.arange(8.0).reshape(1, 1, 2, 4)
    pa, pb = match_spatial(a, b)
    assert pa.tolist() == [[[[1.0, 2.0], [5.0, 6.0]]]]  # rows averaged in pairs: (0+2)/2, (1+3)/2 ...
    assert pb.tolist() == [[[[0.5, 2.5], [4.5, 6.5]]]]  # columns averaged in pairs
    # a vector is a single-position map
    v, w = match_spatial(torch.ones(3, 5), torch.ones(3, 2, 4))
    assert v.shape == (3, 5, 1) and w.shape == (3, 2, 1)


class Stub(nn.Module):
    """A network whose output is fixed (times a trainable scale, so it has parameters)."""

    def __init__(self, logits, **features):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.logits = torch.tensor(logits)
        self.feats = {k: torch.tensor(v) for k, v in features.items()}

    def forward(self, batch):
        return Output(self.logits * self.scale, {k: v * self.scale for k, v in self.feats.items()})


def _softmax(row, T=1.0):
    e = [math.exp(v / T) for v in row]
    return [x / sum(e) for x in e]


def _kl_T2(s_rows, t_rows, T):
    total = 0.0
    for s, t in zip(s_rows, t_rows):
        ps, pt = _softmax(s, T), _softmax(t, T)
        total += sum(q * math.log(q / p) for p, q in zip(ps, pt))
    return total / len(s_rows) * T * T


def _ce(rows, ys):
    return sum(-math.log(_softmax(r)[y]) for r, y in zip(rows, ys)) / len(rows)


def test_fitnets_objective_hand():
    # student hint (B=2, C=1, L=4), teacher hint (B=2, C=2, L=2): pool the student to length 2,
    # regress 1 -> 2 channels with weights [1, 2], bias [0, 1]
    s_logits, t_logits, y = [[0.5, -0.5], [1.0, 2.0]], [[2.0, 0.0], [0.0, 1.0]], [0, 1]
    s_hint = [[[1.0, 3.0, 5.0, 7.0]], [[0.0, 2.0, -2.0, 4.0]]]
    t_hint = [[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [1.0, -1.0]]]
    student = Stub(s_logits, hint=s_hint)
    teacher = Stub(t_logits, hint=t_hint)
    params = {"beta": 100.0, "alpha": 0.3, "temperature": 2.0}
    m = method_class("fitnets")(student, {"teacher": teacher}, params, "classification", 2)
    parts = {"train": Part(x={"face": torch.zeros(2, 1)}, y=torch.tensor(y), index=np.arange(2))}
    m.configure(parts=parts, device=torch.device("cpu"), optimizer=None)
    with torch.no_grad():
        m.regressor.weight.copy_(torch.tensor([[[1.0]], [[2.0]]]))
        m.regressor.bias.copy_(torch.tensor([0.0, 1.0]))
    _, terms = m.training_step({"y": torch.tensor(y)})
    pooled = [[(1 + 3) / 2, (5 + 7) / 2], [(0 + 2) / 2, (-2 + 4) / 2]]  # [[2, 6], [1, 1]]
    sq = 0.0
    for b in range(2):
        for c, (w, bias) in enumerate([(1.0, 0.0), (2.0, 1.0)]):
            for pos in range(2):
                sq += (w * pooled[b][pos] + bias - t_hint[b][c][pos]) ** 2
    want_fit = 100.0 * sq / 8  # mean over 2 x 2 x 2 elements
    assert terms["fitnets"].item() == pytest.approx(want_fit, rel=1e-5)
    assert terms["ce"].item() == pytest.approx(_ce(s_logits, y), rel=1e-5)
    assert terms["kd"].item() == pytest.approx(0.3 * _kl_T2(s_logits, t_logits, 2.0), rel=1e-5)


def test_relational_objectives_hand():
    # SP on a batch of two 2-d embeddings: G = row-normalised Q Q^T; L = beta/b^2 ||G_t - G_s||^2
    s_emb, t_emb = [[1.0, 0.0], [1.0, 1.0]], [[0.0, 2.0], [1.0, 0.0]]
    y, logits = [0, 1], [[0.0, 0.0], [0.0, 0.0]]

    def gram(q):
        g = [[sum(a * b for a, b in zip(qi, qj)) for qj in q] for qi in q]
        return [[v / math.sqrt(sum(x * x for x in row)) for v in row] for row in g]

    gs, gt = gram(s_emb), gram(t_emb)
    want_sp = 3000.0 * sum((gt[i][j] - gs[i][j]) ** 2 for i in range(2) for j in range(2)) / 4
    m = method_class("sp")(Stub(logits, embedding=s_emb), {"teacher": Stub(logits, embedding=t_emb)}, {},
                           "classification", 2)
    _, terms = m.training_step({"y": torch.tensor(y)})
    assert terms["sp"].item() == pytest.approx(want_sp, rel=1e-5)
    assert terms["ce"].item() == pytest.approx(math.log(2), rel=1e-5) and "kd" not in terms

    # PKT: cosine kernel (cos + 1) / 2, rows normalised, mean of p_t log(p_t / p_s) over b^2 entries
    def cond(q):
        n = [[v / math.sqrt(sum(x * x for x in r)) for v in r] for r in q]
        k = [[(sum(a * b for a, b in zip(ni, nj)) + 1) / 2 for nj in n] for ni in n]
        return [[v / sum(row) for v in row] for row in k]

    ps, pt = cond(s_emb), cond(t_emb)
    want_pkt = 30000.0 * sum(pt[i][j] * math.log(pt[i][j] / ps[i][j]) for i in range(2) for j in range(2)) / 4
    m = method_class("pkt")(Stub(logits, embedding=s_emb), {"teacher": Stub(logits, embedding=t_emb)}, {},
                            "classification", 2)
    _, terms = m.training_step({"y": torch.tensor(y)})
    assert terms["pkt"].item() == pytest.approx(want_pkt, rel=1e-4)

    # RKD with two samples: one distance each side, normalised by its own mean -> both 1 (loss 0);
    # angles: the 8 triplets of 2 points have cos 1 where j = k != i and 0 otherwise -> equal (loss 0)
    m = method_class("rkd")(Stub(logits, embedding=s_emb), {"teacher": Stub(logits, embedding=t_emb)}, {},
                            "classification", 2)
    _, terms = m.training_step({"y": torch.tensor(y)})
    assert terms["rkd"].item() == pytest.approx(0.0, abs=1e-6)
    assert m.params["w_d"] == 25.0 and m.params["w_a"] == 50.0 and m.params["beta"] == 1.0


def test_rkd_objective_hand_three_points():
    # distance term only (w_a = 0): student points on a line 0, 1, 3; teacher 0, 1, 2
    s_emb, t_emb = [[0.0], [1.0], [3.0]], [[0.0], [1.0], [2.0]]
    logits = [[0.0, 0.0]] * 3

    def dist(q):
        d = [[abs(a[0] - b[0]) for b in q] for a in q]
        mu = sum(v for row in d for v in row if v > 0) / 6
        return [[v / mu for v in row] for row in d]

    ds, dt = dist(s_emb), dist(t_emb)
    huber = lambda x: 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5
    want = 2.0 * 25.0 * sum(huber(ds[i][j] - dt[i][j]) for i in range(3) for j in range(3)) / 9
    m = method_class("rkd")(Stub(logits, embedding=s_emb), {"teacher": Stub(logits, embedding=t_emb)},
                            {"w_a": 0.0, "beta": 2.0}, "classification", 2)
    _, terms = m.training_step({"y": torch.tensor([0, 1, 0])})
    assert terms["rkd"].item() == pytest.approx(want, rel=1e-5)


def test_nst_objective_hand():
    # one sample, student 1 channel (L=2), teacher 2 channels (L=2): MMD^2 with k = (x.y)^2
    s = [[[3.0, 4.0]]]
    t = [[[1.0, 0.0], [0.0, 2.0]]]
    u = [3 / 5, 4 / 5]
    tn = [[1.0, 0.0], [0.0, 1.0]]
    k = lambda a, b: (a[0] * b[0] + a[1] * b[1]) ** 2
    want = (sum(k(a, b) for a in tn for b in tn) / 4 + k(u, u) - 2 * sum(k(u, b) for b in tn) / 2)
    logits = [[0.0, 1.0]]
    m = method_class("nst")(Stub(logits, hint=s), {"teacher": Stub(logits, hint=t)}, {}, "classification", 2)
    _, terms = m.training_step({"y": torch.tensor([1])})
    assert terms["nst"].item() == pytest.approx(50.0 * want, rel=1e-5)  # weights: paper, the authors' kt_weight 50
    m = method_class("nst")(Stub(logits, hint=s), {"teacher": Stub(logits, hint=t)}, {"weights": "repdistiller", "beta": 3.0},
                            "classification", 2)
    _, terms = m.training_step({"y": torch.tensor([1])})
    assert terms["nst"].item() == pytest.approx(3.0 * want, rel=1e-5)  # an explicit beta wins over the preset


def test_dgkd_objective_hand():
    s_logits = [[1.0, 0.0], [0.0, 0.5]]
    g = {"teacher": [[3.0, -1.0], [0.0, 2.0]], "ta1": [[1.0, 1.0], [2.0, 0.0]], "ta2": [[0.0, 0.0], [0.5, 0.5]]}
    y = [0, 1]
    m = method_class("dgkd")(Stub(s_logits), {r: Stub(v) for r, v in g.items()},
                             {"alpha": 0.4, "temperature": 3.0, "drop_rate": 0.0}, "classification", 2)
    assert m.guide_roles == ["teacher", "ta1", "ta2"]
    _, terms = m.training_step({"y": torch.tensor(y)})
    assert m.last_keep == [True, True, True]
    want = 0.4 * sum(_kl_T2(s_logits, v, 3.0) for v in g.values()) / 3
    assert terms["dgkd"].item() == pytest.approx(want, rel=1e-5)
    assert terms["ce"].item() == pytest.approx(0.6 * _ce(s_logits, y), rel=1e-5)
    # one guide kept: only its KL
    m.params.update(drop_rate=1.0, min_keep=1)
    _, terms = m.training_step({"y": torch.tensor(y)})
    (i,) = [j for j, k in enumerate(m.last_keep) if k]
    role = m.guide_roles[i]
    assert terms["dgkd"].item() == pytest.approx(0.4 * _kl_T2(s_logits, g[role], 3.0), rel=1e-5)


# ----------------------------------------------------------------------------- DGKD keep masks
def _dgkd(params, n_guides=3, context=None):
    guides = {("teacher" if i == 0 else f"ta{i}"): Stub([[0.0, 1.0]]) for i in range(n_guides)}
    return method_class("dgkd")(Stub([[0.0, 0.0]]), guides, params, "classification", 2, context=context)


def _masks(m, seed, epochs=2, per_epoch=50):
    out = []
    for e in range(1, epochs + 1):
        g = torch.Generator().manual_seed(seed)
        state = g.get_state()
        m.on_epoch_start(e, g)
        assert torch.equal(g.get_state(), state)  # the batch-order generator is not advanced
        out += [tuple(m.draw_keep()) for _ in range(per_epoch)]
    return out


def test_dgkd_keep_masks_reproducible_and_seed_dependent():
    p = {"drop_rate": 0.5, "min_keep": 1}
    a, b, c = _masks(_dgkd(p), 0), _masks(_dgkd(p), 0), _masks(_dgkd(p), 1)
    assert a == b
    assert a != c
    assert a[:50] != a[50:]  # epochs differ
    # a seed passed to configure() wins over the generator's
    m = _dgkd(p)
    m.configure(seed=7)
    assert _masks(m, 0) == _masks(_dgkd(p), 7)
    m = _dgkd(p, context=RunContext(seed=7))  # as the training loop builds it
    assert _masks(m, 0) == _masks(_dgkd(p), 7)


def test_dgkd_keep_masks_respect_drop_rate_and_min_keep():
    assert set(_masks(_dgkd({"drop_rate": 0.0}), 3)) == {(True, True, True)}
    ones = _masks(_dgkd({"drop_rate": 1.0, "min_keep": 1}), 3, epochs=4)
    assert all(sum(k) == 1 for k in ones)
    assert {k.index(True) for k in ones} == {0, 1, 2}  # the restored guide is drawn at random
    assert all(sum(k) >= 2 for k in _masks(_dgkd({"drop_rate": 0.7, "min_keep": 2}), 3))
    free = _masks(_dgkd({"drop_rate": 0.3, "min_keep": 0}), 5, epochs=20, per_epoch=100)
    rate = 1 - np.mean([x for k in free for x in k])
    assert abs(rate - 0.3) < 0.02, rate  # 6000 Bernoulli draws: SD 0.006
    assert any(sum(k) == 0 for k in free)  # min_keep 0 allows an all-dropped batch


# ----------------------------------------------------------------------------- params
@pytest.mark.parametrize("name, params, key", [
    ("fitnets", {"beta": -1}, "params.beta"),
    ("fitnets", {"feature": "logits"}, "params.feature"),
    ("nst", {"temperature": 0}, "params.temperature"),
    ("sp", {"feature": 3}, "params.feature"),
    ("rkd", {"w_d": "x"}, "params.w_d"),
    ("pkt", {"alpha": -0.5}, "params.alpha"),
    ("crd", {"nce_k": 0}, "params.nce_k"),
    ("crd", {"nce_m": 1.5}, "params.nce_m"),
    ("crd", {"nce_t": 0.0}, "params.nce_t"),
    ("dgkd", {"drop_rate": 1.5}, "params.drop_rate"),
    ("dgkd", {"min_keep": 4}, "params.min_keep"),
    ("dgkd", {"alpha": 2}, "params.alpha"),
    ("pkt", {"gama": 1}, "unknown key"),
])
def test_bad_params_are_config_errors(name, params, key):
    guides = {"teacher": Stub([[0.0, 1.0]]), "ta1": Stub([[0.0, 1.0]]), "ta2": Stub([[0.0, 1.0]])}
    if name != "dgkd":
        guides = {"teacher": guides["teacher"]}
    with pytest.raises(ConfigError, match=key):
        method_class(name)(Stub([[0.0, 0.0]]), guides, params, "classification", 2)


def test_registry_roles():
    for name in ZOO:
        assert REGISTRY[name].roles == ("teacher",) and method_class(name).roles == ("teacher",)
    assert REGISTRY["dgkd"].variadic_roles


# ----------------------------------------------------------------------------- the workflow
ZOO_METHODS = {
    "fitnets": {"class": "fitnets", "modalities": "student", "requires": {"teacher": "teacher"},
                "params": {"beta": 100.0, "feature": "hint"}},
    "nst": {"class": "nst", "modalities": "student", "requires": {"teacher": "teacher"}, "params": {"beta": 50.0}},
    "sp": {"class": "sp", "modalities": "student", "requires": {"teacher": "teacher"}, "params": {"beta": 3000.0}},
    "rkd": {"class": "rkd", "modalities": "student", "requires": {"teacher": "teacher"},
            "params": {"beta": 1.0, "w_d": 25.0, "w_a": 50.0}},
    "pkt": {"class": "pkt", "modalities": "student", "requires": {"teacher": "teacher"}, "params": {"beta": 30000.0}},
    "crd": {"class": "crd", "modalities": "student", "requires": {"teacher": "teacher"},
            "params": {"beta": 0.8, "feat_dim": 128, "nce_k": 4096, "nce_t": 0.07, "nce_m": 0.5}},
    "ta": {"class": "kd", "modalities": "teacher", "requires": {"teacher": "teacher"},
           "encoders": {"eeg": {"num_T": 2, "num_S": 2}}, "params": {"alpha": 0.5, "temperature": 4.0}},
    "takd": {"class": "kd", "modalities": "student", "requires": {"teacher": "ta"},
             "params": {"alpha": 0.5, "temperature": 4.0}},
    "dgkd_ta1": {"class": "dgkd", "modalities": "teacher", "requires": {"teacher": "teacher"},
                 "encoders": {"eeg": {"num_T": 3, "num_S": 3}},
                 "params": {"alpha": 0.5, "temperature": 4.0, "drop_rate": 0.0}},
    "dgkd_ta2": {"class": "dgkd", "modalities": "teacher", "requires": {"teacher": "teacher", "ta1": "dgkd_ta1"},
                 "encoders": {"eeg": {"num_T": 2, "num_S": 2}},
                 "params": {"alpha": 0.5, "temperature": 4.0, "drop_rate": 0.5, "min_keep": 1}},
    "dgkd": {"class": "dgkd", "modalities": "student",
             "requires": {"teacher": "teacher", "ta1": "dgkd_ta1", "ta2": "dgkd_ta2"},
             "params": {"alpha": 0.5, "temperature": 4.0, "drop_rate": 0.5, "min_keep": 1}},
}


@pytest.mark.slow
def test_zoo_workflow(tmp_path, snakemake_runner):
    from conftest import tiny_config

    cfg = tiny_config()
    cfg["seeds"] = [0]
    cfg["training"].update({"max_epochs": 1, "patience": 1})
    cfg["methods"].update(ZOO_METHODS)
    names = list(ZOO_METHODS)
    cfg["experiments"] = [{"dataset": "synthetic", "track": "face_eeg-to-face", "dimensions": ["arousal"],
                           "methods": names}]
    cfg["tables"] = [t for t in cfg["tables"] if t["name"] == "all_methods"]
    r = snakemake_runner(tmp_path, "--cores", "2", config=cfg, timeout=240)
    assert r.returncode == 0, (r.stdout + r.stderr)[-5000:]
    runs = pd.read_csv(tmp_path / "results/summary/runs.csv")
    assert set(runs["method"]) == set(names) | {"teacher"}
    assert runs["status"].isin(["ok", "degenerate"]).all()  # every run completed (a tiny run may predict one class)
    assert len(runs) == len(names) + 1
    hist = lambda m: pd.read_csv(tmp_path / f"results/synthetic/face_eeg-to-face/arousal/{m}/seed0/history.csv")
    for m in ZOO_METHODS:
        if m.startswith(("ta", "takd")) or m.startswith("dgkd"):
            continue
        assert f"train_{m}" in hist(m).columns, m
    assert "train_dgkd" in hist("dgkd").columns and "train_kd" in hist("takd").columns


# ----------------------------------------------------------------------------- cached teacher outputs
@pytest.mark.parametrize("name", ["fitnets", "rkd", "crd"])
def test_cached_teacher_outputs_match_running_the_teacher(name):
    """The teacher run once over the training part gives, batch by batch, what running it per
    batch gives (logits and every feature), and the distillation terms are the same."""
    m, _, parts, teacher = _method(name)
    dev = torch.device("cpu")
    m.train()
    idx = torch.tensor([5, 0, 17, 3, 9, 22])
    batch = parts["train"].batch(idx, dev)
    direct = m.teacher_outputs(batch)["teacher"]
    terms_direct = m.training_step(batch)[1]
    assert m.cache_teacher_outputs(parts["train"], dev, batch_size=7, budget_mb=64)
    cached = m.teacher_outputs(batch)["teacher"]
    torch.testing.assert_close(cached.logits, direct.logits, rtol=1e-5, atol=1e-6)
    assert set(cached.features) == set(direct.features)
    for k in direct.features:
        torch.testing.assert_close(cached.features[k], direct.features[k], rtol=1e-5, atol=1e-6)
    terms_cached = m.training_step(batch)[1]
    for k in terms_direct if name != "crd" else ():  # CRD's step updates its memory bank and draws negatives
        torch.testing.assert_close(terms_cached[k], terms_direct[k], rtol=1e-4, atol=1e-6)
    # evaluation mode (no "training part" positions) runs the teacher itself
    m.eval()
    assert m.teacher_outputs({k: v for k, v in batch.items() if k != "index"})["teacher"].logits.shape == (6, 2)


def test_teacher_cache_respects_budget_and_trainable_teachers():
    m, _, parts, _ = _method("fitnets")
    assert not m.cache_teacher_outputs(parts["train"], torch.device("cpu"), 8, budget_mb=1e-4)
    assert m._teacher_cache is None
    assert not m.cache_teacher_outputs(parts["train"], torch.device("cpu"), 8, budget_mb=0)
    m.teachers_trainable = True  # a teacher that learns (MKD feedback) must run every step
    assert not m.cache_teacher_outputs(parts["train"], torch.device("cpu"), 8, budget_mb=64)


# ----------------------------------------------------------------------------- weight presets
# (method, preset) -> the values the preset must resolve to, each from the source named in the
# method's REGISTER comment and docs/kd_weights.md (whose table is generated from the presets)
CITED_WEIGHTS = {
    ("kd", "paper"): {"temperature": 20.0, "alpha": 2 / 3},        # Hinton et al. 2015 §3 (T), §4.1 (CE 0.5 : KD 1)
    ("kd", "repdistiller"): {"temperature": 4.0, "alpha": 0.9},    # run_cifar_distill.sh -r 0.1 -a 0.9, --kd_T 4
    ("kd", "previous"): {"temperature": 4.0, "alpha": 0.5},        # the values run at 912213b
    ("fitnets", "paper"): {"beta": 100.0},                         # none given (hint stage): RepDistiller's
    ("fitnets", "repdistiller"): {"beta": 100.0},
    ("nst", "paper"): {"beta": 50.0},                              # authors' code: kt_weight 50 on the MMD
    ("nst", "repdistiller"): {"beta": 50.0},
    ("sp", "paper"): {"beta": 3000.0},                             # Tung & Mori 2019 gamma (RepDistiller's, author-verified)
    ("sp", "repdistiller"): {"beta": 3000.0},
    ("pkt", "paper"): {"beta": 30000.0},                           # none given (PKT alone): RepDistiller's
    ("pkt", "repdistiller"): {"beta": 30000.0},
    ("rkd", "paper"): {"beta": 1.0, "w_d": 25.0, "w_a": 50.0},     # authors' code: --dist_ratio 25 --angle_ratio 50
    ("rkd", "repdistiller"): {"beta": 1.0, "w_d": 25.0, "w_a": 50.0},
    ("crd", "paper"): {"beta": 0.8},                               # the paper's code (RepDistiller): -b 0.8
    ("crd", "repdistiller"): {"beta": 0.8},
}


@pytest.mark.parametrize("method, preset", sorted(CITED_WEIGHTS))
def test_weight_presets_resolve_to_the_cited_values(method, preset):
    from cmkd.methods import method_class, method_params

    want = CITED_WEIGHTS[(method, preset)]
    got = method_params(method, {"weights": preset}, f"methods.{method}.params")
    assert {k: got[k] for k in want} == want
    if preset == "paper":  # the default preset
        default = method_params(method, {}, f"methods.{method}.params")
        assert default["weights"] == "paper" and {k: default[k] for k in want} == want


def test_weight_presets_yield_to_explicit_values_and_reject_unknown_names():
    from cmkd.methods import method_params

    p = method_params("kd", {"weights": "paper", "temperature": 2.0}, "methods.kd.params")
    assert p["temperature"] == 2.0 and p["alpha"] == 2 / 3  # the explicit value wins, the rest from the preset
    with pytest.raises(ConfigError, match=r"methods\.kd\.params\.weights"):
        method_params("kd", {"weights": "cifar"}, "methods.kd.params")


def test_kd_method_object_runs_with_the_preset():
    """Constructing the method applies the preset too (not only the config check)."""
    from cmkd.methods import method_class

    m = method_class("kd")(nn.Linear(2, 2), {"teacher": nn.Linear(2, 2)}, {"weights": "repdistiller"}, "classification", 2)
    assert (m.params["alpha"], m.params["temperature"]) == (0.9, 4.0)
    m = method_class("nst")(nn.Linear(2, 2), {"teacher": nn.Linear(2, 2)}, {}, "classification", 2)
    assert m.params["beta"] == 50.0 and m.params["weights"] == "paper"


def test_kd_weights_doc_table_is_generated_from_the_presets(tmp_path):
    """docs/kd_weights.md shows the presets in a block generated from them, every (method, parameter)
    of it has a row in the sources table, and no other method declares presets of its own."""
    import dataclasses
    import re
    from pathlib import Path

    from cmkd import listing
    from cmkd.methods import weight_table

    doc = Path(__file__).resolve().parents[1] / "docs" / "kd_weights.md"
    assert listing.sync_file(doc, check=True), \
        "docs/kd_weights.md's preset table is stale: run python -m cmkd list --sync docs/kd_weights.md"
    text = doc.read_text(encoding="utf-8")
    # a preset that changes is seen: the committed text no longer matches
    changed = dict(REGISTRY)
    nst = changed["nst"]
    changed["nst"] = dataclasses.replace(nst, presets={**nst.presets, "paper": {"beta": 25.0}})
    assert weight_table.fill(text, registry=changed) != text
    stale = tmp_path / "kd_weights.md"
    stale.write_text(text.replace("| `nst` | `beta` | 50 |", "| `nst` | `beta` | 25 |"), encoding="utf-8")
    assert not listing.sync_file(stale, check=True)
    # every value of the table has its source written beside it
    sources = text.split("## Where each `paper` value comes from", 1)[1]
    for m, p, _ in weight_table.rows():
        assert re.search(rf"^\| `{m}` \| `{p}` \| .+ \| .+ \|$", sources, re.M), f"no source row for {m}.{p}"
    # the table lists every method with presets of its own (CMCRD inherits CRD's)
    listed = {REGISTRY[m].presets.__repr__() for m in weight_table.BASELINES}
    for name, info in REGISTRY.items():
        if info.presets and name not in weight_table.BASELINES:
            assert repr(info.presets) in listed, f"{name}: presets of its own, missing from docs/kd_weights.md"
