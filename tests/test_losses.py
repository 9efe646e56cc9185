"""Tests of cmkd.losses: each loss against an independent hand computation (plain Python loops on
tiny inputs, no torch expressions shared with the implementation), plus properties."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmkd import losses as L
from cmkd.losses.guided import _kl

TOL = 1e-5


def t64(x):
    return torch.tensor(x, dtype=torch.float64)


# ----------------------------------------------------------------------------- reference helpers
def ref_softmax(row, T=1.0):
    m = max(row)
    e = [math.exp((v - m) / T) for v in row]
    s = sum(e)
    return [v / s for v in e]


def ref_kd(s, t, T):
    total = 0.0
    for srow, trow in zip(s, t):
        ps, pt = ref_softmax(srow, T), ref_softmax(trow, T)
        total += sum(pt[c] * (math.log(pt[c]) - math.log(ps[c])) for c in range(len(srow)))
    return total / len(s) * T * T


def ref_ce(logits, labels):
    total = 0.0
    for row, y in zip(logits, labels):
        p = ref_softmax(row)
        total += -math.log(p[y])
    return total / len(logits)


def norm(v):
    return math.sqrt(sum(x * x for x in v))


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def smooth_l1(x):
    return 0.5 * x * x if abs(x) < 1.0 else abs(x) - 0.5


# ----------------------------------------------------------------------------- KD
S_LOGITS = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
T_LOGITS = [[2.0, 0.0, 1.0], [1.0, 1.0, -2.0]]


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
def test_kd_hand(T):
    got = L.kd(t64(S_LOGITS), t64(T_LOGITS), temperature=T)
    assert got.dim() == 0
    assert got.item() == pytest.approx(ref_kd(S_LOGITS, T_LOGITS, T), abs=TOL)


def test_kd_default_temperature_is_4():
    assert L.kd(t64(S_LOGITS), t64(T_LOGITS)).item() == pytest.approx(ref_kd(S_LOGITS, T_LOGITS, 4.0), abs=TOL)


def test_kd_zero_for_identical_logits():
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    assert L.kd(x, x.clone(), 3.0).item() == pytest.approx(0.0, abs=1e-6)


def test_kd_scales_with_T_squared():
    # Same softened distributions at temperature T as at 1: the loss differs by exactly T^2.
    s, t = t64(S_LOGITS), t64(T_LOGITS)
    base = L.kd(s, t, 1.0)
    for T in (2.0, 5.0):
        assert L.kd(s * T, t * T, T).item() == pytest.approx(T * T * base.item(), rel=1e-9)


def test_kd_rejects_bad_input():
    with pytest.raises(ValueError):
        L.kd(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError):
        L.kd(torch.zeros(2, 3), torch.zeros(2, 3), temperature=0.0)


# ----------------------------------------------------------------------------- FitNets
def test_fitnets_hand():
    s = [[[1.0, 2.0], [3.0, 4.0]], [[0.0, -1.0], [0.5, 2.0]]]
    t = [[[1.5, 2.0], [2.0, 4.0]], [[1.0, -1.0], [0.5, 0.0]]]
    sq, n = 0.0, 0
    for a, b in zip(s, t):
        for ra, rb in zip(a, b):
            for x, y in zip(ra, rb):
                sq += (x - y) ** 2
                n += 1
    assert L.fitnets(t64(s), t64(t)).item() == pytest.approx(sq / n, abs=TOL)
    with pytest.raises(ValueError):
        L.fitnets(torch.zeros(2, 3), torch.zeros(2, 4))


# ----------------------------------------------------------------------------- NST
def ref_nst(fs, ft):
    """fs, ft: [B][C][N] nested lists."""
    def normed(f):
        return [[[v / norm(ch) for v in ch] for ch in sample] for sample in f]

    fs, ft = normed(fs), normed(ft)

    def kmean(a, b):
        vals = [dot(x, y) ** 2 for sa, sb in zip(a, b) for x in sa for y in sb]
        return sum(vals) / len(vals)

    return kmean(ft, ft) + kmean(fs, fs) - 2 * kmean(fs, ft)


NST_S = [[[1.0, 0.0, 2.0], [0.5, 1.0, -1.0]], [[0.0, 1.0, 1.0], [2.0, 1.0, 0.0]]]  # B=2, C=2, N=3
NST_T = [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 2.0, 3.0]], [[1.0, -1.0, 0.5], [3.0, 0.0, 1.0], [0.0, 1.0, 0.0]]]  # C=3


def test_nst_hand():
    got = L.nst(t64(NST_S), t64(NST_T)).item()
    assert got == pytest.approx(ref_nst(NST_S, NST_T), abs=TOL)
    assert got > 0


def test_nst_flattens_spatial_axes():
    s = torch.randn(2, 3, 2, 3, dtype=torch.float64)
    t = torch.randn(2, 4, 2, 3, dtype=torch.float64)
    flat = L.nst(s.reshape(2, 3, 6), t.reshape(2, 4, 6))
    assert L.nst(s, t).item() == pytest.approx(flat.item(), abs=1e-12)
    assert L.nst(s, t).item() == pytest.approx(ref_nst(s.reshape(2, 3, 6).tolist(), t.reshape(2, 4, 6).tolist()), abs=TOL)


def test_nst_over_batch_hand():
    """The batch as NST's positions (a reconstruction for vector features), written out by hand:
    student (B=2, C=2) rows [1, 0], [0, 2] -> neuron patterns over the batch (1, 0), (0, 1);
    teacher (B=2, C=1) rows [3], [4] -> pattern (0.6, 0.8).
    k(t,t) = 1; k(s,s): 1, 0, 0, 1 -> 0.5; k(s,t): 0.6^2, 0.8^2 -> mean 0.5; L = 1 + 0.5 - 1 = 0.5."""
    s = t64([[1.0, 0.0], [0.0, 2.0]])
    t = t64([[3.0], [4.0]])
    assert L.nst_over_batch(s, t).item() == pytest.approx(0.5, abs=TOL)
    # a map is pooled over its positions first: (B, C, L) with means [1, 0], [0, 2]
    s_map = t64([[[0.5, 1.5], [-1.0, 1.0]], [[0.0, 0.0], [1.0, 3.0]]])
    assert L.nst_over_batch(s_map, t).item() == pytest.approx(0.5, abs=TOL)
    # against the general hand reference on random data: the transposed pooled features
    g = torch.Generator().manual_seed(3)
    sr = torch.randn(5, 3, 4, generator=g, dtype=torch.float64)
    tr = torch.randn(5, 6, generator=g, dtype=torch.float64)
    want = ref_nst([sr.mean(2).t().tolist()], [tr.t().tolist()])
    assert L.nst_over_batch(sr, tr).item() == pytest.approx(want, abs=TOL)
    with pytest.raises(ValueError):
        L.nst_over_batch(torch.randn(3, 2), torch.randn(4, 2))


def test_nst_over_batch_gradient_where_spatial_nst_has_none():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(6, 8, 20, generator=g, requires_grad=True)   # an EEG hint map (B, C, T)
    t = torch.randn(6, 16, generator=g)                          # a vector hint (B, C)
    loss = L.nst_over_batch(s, t)
    assert float(loss) > 1e-3
    loss.backward()
    assert float(s.grad.abs().max()) > 1e-6


def test_nst_zero_for_identical_and_shape_errors():
    x = torch.randn(3, 4, 5)
    assert L.nst(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="spatial size"):
        L.nst(torch.randn(2, 3, 4), torch.randn(2, 3, 5))
    with pytest.raises(ValueError):
        L.nst(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(ValueError):
        L.nst(torch.randn(2, 3, 4), torch.randn(3, 3, 4))


# ----------------------------------------------------------------------------- SP
def ref_sp(fs, ft):
    b = len(fs)

    def gram_rows(f):
        g = [[dot(f[i], f[j]) for j in range(b)] for i in range(b)]
        return [[v / norm(row) for v in row] for row in g]

    gs, gt = gram_rows(fs), gram_rows(ft)
    return sum((gt[i][j] - gs[i][j]) ** 2 for i in range(b) for j in range(b)) / (b * b)


SP_S = [[1.0, 2.0, 0.0], [0.0, 1.0, 1.0], [2.0, -1.0, 1.0]]
SP_T = [[1.0, 0.0], [1.0, 1.0], [-1.0, 2.0]]


def test_sp_hand():
    got = L.sp(t64(SP_S), t64(SP_T)).item()
    assert got == pytest.approx(ref_sp(SP_S, SP_T), abs=TOL)
    assert got > 0


def test_sp_zero_for_identical_and_flattens():
    x = torch.randn(4, 2, 3)
    assert L.sp(x, x.clone()).item() == pytest.approx(0.0, abs=1e-7)
    y = torch.randn(4, 5)
    assert L.sp(x, y).item() == pytest.approx(L.sp(x.reshape(4, 6), y).item(), abs=1e-7)


# ----------------------------------------------------------------------------- RKD
def ref_rkd(s, t, wd, wa):
    b = len(s)

    def dists(e):
        d = [[norm([x - y for x, y in zip(e[i], e[j])]) if i != j else 0.0 for j in range(b)] for i in range(b)]
        pos = [v for row in d for v in row if v > 0]
        mu = sum(pos) / len(pos)
        return [[v / mu for v in row] for row in d]

    def unit(v):
        n = norm(v)
        return [x / n for x in v] if n > 0 else [0.0 for _ in v]

    def angles(e):
        out = []
        for i in range(b):
            for j in range(b):
                for k in range(b):
                    eij = unit([x - y for x, y in zip(e[j], e[i])])
                    eik = unit([x - y for x, y in zip(e[k], e[i])])
                    out.append(dot(eij, eik))
        return out

    ds, dt = dists(s), dists(t)
    loss_d = sum(smooth_l1(ds[i][j] - dt[i][j]) for i in range(b) for j in range(b)) / (b * b)
    as_, at = angles(s), angles(t)
    loss_a = sum(smooth_l1(x - y) for x, y in zip(as_, at)) / len(as_)
    return wd * loss_d + wa * loss_a


RKD_S = [[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]
RKD_T = [[0.0, 0.0, 1.0], [2.0, 1.0, 0.0], [1.0, 3.0, 0.0], ]


def test_rkd_hand():
    got = L.rkd(t64(RKD_S), t64(RKD_T)).item()
    assert got == pytest.approx(ref_rkd(RKD_S, RKD_T, 25.0, 50.0), abs=TOL)
    assert got > 0
    got2 = L.rkd(t64(RKD_S), t64(RKD_T), w_distance=1.0, w_angle=0.0).item()
    assert got2 == pytest.approx(ref_rkd(RKD_S, RKD_T, 1.0, 0.0), abs=TOL)


def test_rkd_hand_with_large_residual():
    # Residuals beyond 1 exercise the linear branch of smooth-L1.
    s = [[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [0.0, 0.2]]
    t = [[0.0, 0.0], [5.0, 5.0], [0.1, 0.1], [3.0, -4.0]]
    assert L.rkd(t64(s), t64(t)).item() == pytest.approx(ref_rkd(s, t, 25.0, 50.0), abs=TOL)


def test_rkd_zero_for_identical_scale_invariant_and_single_sample():
    x = torch.randn(5, 3, dtype=torch.float64)
    assert L.rkd(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert L.rkd(3.0 * x, x).item() == pytest.approx(0.0, abs=1e-6)  # relations are scale-free
    one = torch.randn(1, 3, requires_grad=True)
    z = L.rkd(one, torch.randn(1, 3))
    assert z.item() == 0.0
    z.backward()
    assert torch.equal(one.grad, torch.zeros_like(one))


# ----------------------------------------------------------------------------- PKT
def ref_pkt(s, t, eps=1e-7):
    b = len(s)

    def probs(e):
        e = [[x / (norm(v) + eps) for x in v] for v in e]
        k = [[(dot(e[i], e[j]) + 1.0) / 2.0 for j in range(b)] for i in range(b)]
        return [[v / sum(row) for v in row] for row in k]

    ps, pt = probs(s), probs(t)
    total = sum(pt[i][j] * math.log((pt[i][j] + eps) / (ps[i][j] + eps)) for i in range(b) for j in range(b))
    return total / (b * b)


def test_pkt_hand():
    s = [[1.0, 0.0, 1.0], [0.0, 2.0, 1.0], [1.0, -1.0, 0.0]]
    t = [[1.0, 1.0], [-1.0, 2.0], [0.5, 0.0]]
    got = L.pkt(t64(s), t64(t)).item()
    assert got == pytest.approx(ref_pkt(s, t), abs=TOL)
    assert got > 0


def test_pkt_zero_for_identical():
    x = torch.randn(6, 4)
    assert L.pkt(x, x.clone()).item() == pytest.approx(0.0, abs=1e-7)


# ----------------------------------------------------------------------------- gradients
FEATURE_LOSSES = {
    "kd": (lambda s, t: L.kd(s, t, 2.0), (4, 3), (4, 3)),
    "fitnets": (L.fitnets, (4, 3, 5), (4, 3, 5)),
    "nst": (L.nst, (4, 3, 5), (4, 6, 5)),
    "sp": (L.sp, (4, 7), (4, 5)),
    "rkd": (L.rkd, (4, 7), (4, 5)),
    "pkt": (L.pkt, (4, 7), (4, 5)),
    "dgkd": (lambda s, t: L.dgkd(s, [t, 2 * t], 2.0, [True, True]), (4, 3), (4, 3)),
}


@pytest.mark.parametrize("name", sorted(FEATURE_LOSSES))
def test_gradient_reaches_student_only(name):
    fn, s_shape, t_shape = FEATURE_LOSSES[name]
    g = torch.Generator().manual_seed(1)
    student = torch.randn(*s_shape, generator=g, requires_grad=True)
    teacher_src = torch.randn(*t_shape, generator=g, requires_grad=True)
    teacher = teacher_src.detach()  # as a method passes a frozen teacher's output
    loss = fn(student, teacher)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()
    assert student.grad.abs().sum() > 0
    assert teacher_src.grad is None


def test_rkd_teacher_side_is_detached():
    # As in the reference implementation, RKD computes the teacher's potentials without gradient:
    # even a teacher that requires grad gets none.
    student = torch.randn(4, 7, requires_grad=True)
    teacher = torch.randn(4, 5, requires_grad=True)
    loss = L.rkd(student, teacher)
    assert torch.autograd.grad(loss, teacher, allow_unused=True)[0] is None


# ----------------------------------------------------------------------------- DGKD / CDGKD eq. 9
def test_dgkd_one_kept_guide_equals_kd():
    s, g1, g2 = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    assert L.dgkd(s, [g1], 3.0, [True]).item() == pytest.approx(L.kd(s, g1, 3.0).item(), abs=1e-7)
    assert L.dgkd(s, [g1, g2], 3.0, [False, True]).item() == pytest.approx(L.kd(s, g2, 3.0).item(), abs=1e-7)


def test_dgkd_mean_over_kept_guides_hand():
    guides = [T_LOGITS, [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], [[5.0, 0.0, 0.0], [0.0, 0.0, 5.0]]]
    got = L.dgkd(t64(S_LOGITS), [t64(g) for g in guides], 2.0, [True, False, True]).item()
    want = (ref_kd(S_LOGITS, guides[0], 2.0) + ref_kd(S_LOGITS, guides[2], 2.0)) / 2
    assert got == pytest.approx(want, abs=TOL)
    all_kept = L.dgkd(t64(S_LOGITS), [t64(g) for g in guides], 2.0, [True, True, True]).item()
    assert all_kept == pytest.approx(sum(ref_kd(S_LOGITS, g, 2.0) for g in guides) / 3, abs=TOL)


def test_dgkd_no_kept_guide_is_graph_zero_and_length_check():
    s = torch.randn(3, 4, requires_grad=True)
    z = L.dgkd(s, [torch.randn(3, 4)], 2.0, [False])
    assert z.item() == 0.0 and z.requires_grad
    z.backward()
    assert torch.equal(s.grad, torch.zeros_like(s))
    with pytest.raises(ValueError):
        L.dgkd(s, [torch.randn(3, 4)], 2.0, [True, False])


def test_cdgkd_hand():
    labels = [1, 2]
    guides = [T_LOGITS, [[0.0, 3.0, 0.0], [1.0, 2.0, 3.0]]]
    beta = 0.3
    got = L.cdgkd(t64(S_LOGITS), torch.tensor(labels), [t64(g) for g in guides], [True, True], beta=beta,
                  kl_direction="guide_current").item()
    # T = 1: KL(softmax(guide) || softmax(student)), no extra factor.
    want = (1 - beta) * ref_ce(S_LOGITS, labels) + beta * (
        ref_kd(S_LOGITS, guides[0], 1.0) + ref_kd(S_LOGITS, guides[1], 1.0)
    ) / 2
    assert got == pytest.approx(want, abs=TOL)
    got_t = L.cdgkd(t64(S_LOGITS), torch.tensor(labels), [t64(guides[0])], [True], beta=0.5, temperature=2.0,
                    kl_direction="guide_current").item()
    assert got_t == pytest.approx(0.5 * ref_ce(S_LOGITS, labels) + 0.5 * ref_kd(S_LOGITS, guides[0], 2.0), abs=TOL)
    # the default is eq. (9)'s direction, KL(softmax(student) || softmax(guide)): ref_kd with the roles swapped
    got_eq = L.cdgkd(t64(S_LOGITS), torch.tensor(labels), [t64(g) for g in guides], [True, True], beta=beta).item()
    want_eq = (1 - beta) * ref_ce(S_LOGITS, labels) + beta * (
        ref_kd(guides[0], S_LOGITS, 1.0) + ref_kd(guides[1], S_LOGITS, 1.0)
    ) / 2
    assert got_eq == pytest.approx(want_eq, abs=TOL)
    assert abs(got_eq - got) > 1e-3


def test_cdgkd_no_guide_kept_is_weighted_ce():
    labels = [0, 2]
    got = L.cdgkd(t64(S_LOGITS), torch.tensor(labels), [t64(T_LOGITS)], [False], beta=0.4).item()
    assert got == pytest.approx(0.6 * ref_ce(S_LOGITS, labels), abs=TOL)
    with pytest.raises(ValueError):
        L.cdgkd(t64(S_LOGITS), torch.tensor(labels), [t64(T_LOGITS)], [True], beta=1.5)


# ----------------------------------------------------------------------------- CDGKD eq. 1-6
def test_class_prototypes_hand_and_empty_class_is_nan():
    feats = [[1.0, 2.0], [3.0, 4.0], [-1.0, 0.0], [0.0, 6.0]]
    labels = [0, 0, 2, 0]
    got = L.class_prototypes(t64(feats), torch.tensor(labels), 3)
    assert got.shape == (3, 2)
    want0 = [(1 + 3 + 0) / 3, (2 + 4 + 6) / 3]
    assert got[0].tolist() == pytest.approx(want0, abs=TOL)
    assert torch.isnan(got[1]).all()
    assert got[2].tolist() == pytest.approx([-1.0, 0.0], abs=TOL)
    with pytest.raises(ValueError):
        L.class_prototypes(t64(feats), torch.tensor([0, 0, 3, 0]), 3)


def test_prototype_loss_two_class_hand():
    # z1 = (0,0) of class 0, z2 = (1,0) of class 1; c0 = (0,0), c1 = (1,1).
    # z1: d = (0, 2) -> p0 = 1 / (1 + e^-2);  z2: d = (1, 1) -> p1 = 1/2.
    feats, labels, protos = t64([[0.0, 0.0], [1.0, 0.0]]), torch.tensor([0, 1]), t64([[0.0, 0.0], [1.0, 1.0]])
    p1 = 1.0 / (1.0 + math.exp(-2.0))
    p2 = 0.5
    probs = L.prototype_probs(feats, labels, protos)
    assert probs.shape == (2,)
    assert probs.tolist() == pytest.approx([p1, p2], abs=TOL)
    loss = L.prototype_loss(feats, labels, protos).item()
    assert loss == pytest.approx((-math.log(p1) - math.log(p2)) / 2, abs=TOL)
    assert L.convergence_rate(probs).item() == pytest.approx(p1 + p2, abs=TOL)


def test_prototype_probs_skip_absent_class():
    feats = t64([[0.0, 0.0], [2.0, 0.0]])
    labels = torch.tensor([0, 2])
    protos = L.class_prototypes(t64([[0.0, 1.0], [2.0, 1.0]]), labels, 3)  # class 1 empty -> NaN
    # class 1 is out of the softmax: z1: d = (1, -, 5) -> p = e^-1 / (e^-1 + e^-5)
    want = math.exp(-1) / (math.exp(-1) + math.exp(-5))
    feats.requires_grad_(True)
    got = L.prototype_probs(feats, labels, protos)
    assert got.tolist() == pytest.approx([want, want], abs=TOL)
    got.sum().backward()
    assert torch.isfinite(feats.grad).all()
    with pytest.raises(ValueError, match="no prototype"):
        L.prototype_loss(feats, torch.tensor([1, 2]), protos)


def test_prototype_loss_gradient_flows_to_features():
    feats = torch.randn(6, 3, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    protos = L.class_prototypes(feats.detach(), labels, 3)
    L.prototype_loss(feats, labels, protos).backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "r_v, r_e, want",
    [
        (2.0, 2.0, (0.0, 0.0)),  # ratio 1 -> both 0
        (2.0, 3.0, (0.5, 0.0)),  # EEG faster, ratio 1.5 -> visual (slower) 0.5
        (3.0, 2.0, (0.0, 0.5)),  # visual faster -> EEG (slower) 0.5
        (1.0, 2.0, (1.0, 0.0)),  # ratio 2 -> 1
        (1.0, 7.0, (1.0, 0.0)),  # ratio > 2 -> clipped to 1
        (4.0, 1.0, (0.0, 1.0)),
        (4.0, 4.4, (0.1, 0.0)),
        (0.0, 1.0, (1.0, 0.0)),  # visual not converging at all
        (1.0, 0.0, (0.0, 1.0)),
        (0.0, 0.0, (0.0, 0.0)),
    ],
)
def test_rebalance_weights(r_v, r_e, want):
    got = L.rebalance_weights(r_v, r_e)
    assert isinstance(got[0], float) and isinstance(got[1], float)
    assert got == pytest.approx(want, abs=1e-12)


def test_rebalance_weights_tensors_and_errors():
    r_v = torch.tensor(2.0, requires_grad=True) * 1.0
    r_e = torch.tensor(3.0)
    lv, le = L.rebalance_weights(r_v, r_e)
    assert (lv, le) == (0.5, 0.0) and type(lv) is float
    with pytest.raises(ValueError):
        L.rebalance_weights(-1.0, 1.0)
    with pytest.raises(ValueError):
        L.rebalance_weights(float("nan"), 1.0)


def test_teacher_loss_hand():
    ce, pv, pe = t64(0.9), t64(1.7), t64(2.5)
    got = L.teacher_loss(ce, pv, pe, 0.5, 0.0, alpha=0.2).item()
    assert got == pytest.approx(0.8 * 0.9 + 0.2 * (0.5 * 1.7 + 0.0 * 2.5), abs=TOL)
    got = L.teacher_loss(ce, pv, pe, 0.0, 1.0, alpha=0.5).item()
    assert got == pytest.approx(0.5 * 0.9 + 0.5 * 2.5, abs=TOL)
    with pytest.raises(ValueError):
        L.teacher_loss(ce, pv, pe, 0.0, 0.0, alpha=1.2)


# ----------------------------------------------------------------------------- CRD
def ref_nce(x, n_data, eps=1e-7):
    b = len(x)
    k = len(x[0]) - 1
    kpn = k / n_data
    total = 0.0
    for row in x:
        total += math.log(row[0] / (row[0] + kpn + eps))
        for v in row[1:]:
            total += math.log(kpn / (v + kpn + eps))
    return -total / b


def test_crd_nce_loss_hand():
    x = [[0.9, 0.1, 0.3], [0.5, 0.05, 0.6]]
    assert L.crd_nce_loss(t64(x), 4).item() == pytest.approx(ref_nce(x, 4), abs=TOL)
    assert L.crd_nce_loss(t64(x).unsqueeze(2), 4).item() == pytest.approx(ref_nce(x, 4), abs=TOL)
    with pytest.raises(ValueError):
        L.crd_nce_loss(t64([[0.9], [0.5]]), 4)


def test_crd_memory_k_adapts_to_small_data():
    torch.manual_seed(0)
    assert L.CRDMemory(n_data=5, feat_dim=3, k=4096).k == 4
    assert L.CRDMemory(n_data=100, feat_dim=3, k=16).k == 16
    mem = L.CRDMemory(n_data=5, feat_dim=3, k=4096)
    assert torch.allclose(mem.memory_student.norm(dim=1), torch.ones(5))
    idx = mem.sample(torch.tensor([0, 3]))
    assert idx.shape == (2, 5)
    assert idx[:, 0].tolist() == [0, 3]
    for b, pos in enumerate([0, 3]):
        negs = idx[b, 1:].tolist()
        assert pos not in negs and all(0 <= n < 5 for n in negs)
    with pytest.raises(ValueError):
        L.CRDMemory(n_data=1, feat_dim=3)
    with pytest.raises(ValueError):
        mem.sample(torch.tensor([1, 1]))


def test_crd_hand_scores_z_and_memory_update():
    torch.manual_seed(0)
    mem = L.CRDMemory(n_data=4, feat_dim=2, k=2, momentum=0.5).double()
    m_s = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]]
    m_t = [[0.0, 1.0], [0.8, 0.6], [-0.6, 0.8], [0.0, -1.0]]
    mem.memory_student.copy_(t64(m_s))
    mem.memory_teacher.copy_(t64(m_t))
    s_raw, t_raw = [[3.0, 4.0], [1.0, 1.0]], [[0.0, 2.0], [1.0, 0.0]]
    index = [1, 2]
    cidx = [[1, 0, 3], [2, 3, 1]]
    T = 0.5
    loss = L.crd(t64(s_raw), t64(t_raw), torch.tensor(index), mem, temperature=T, contrast_idx=torch.tensor(cidx))

    s = [[v / norm(r) for v in r] for r in s_raw]
    t = [[v / norm(r) for v in r] for r in t_raw]
    out_s = [[math.exp(dot(m_t[j], s[b]) / T) for j in cidx[b]] for b in range(2)]
    out_t = [[math.exp(dot(m_s[j], t[b]) / T) for j in cidx[b]] for b in range(2)]
    z_s = sum(sum(r) for r in out_s) / 6 * 4
    z_t = sum(sum(r) for r in out_t) / 6 * 4
    assert mem.z_student.item() == pytest.approx(z_s, rel=1e-9)
    assert mem.z_teacher.item() == pytest.approx(z_t, rel=1e-9)
    want = ref_nce([[v / z_s for v in r] for r in out_s], 4) + ref_nce([[v / z_t for v in r] for r in out_t], 4)
    assert loss.item() == pytest.approx(want, abs=TOL)

    # memory: normalise(0.5 * old + 0.5 * new) at the batch's indices, others untouched
    for b, i in enumerate(index):
        new_s = [0.5 * m_s[i][d] + 0.5 * s[b][d] for d in range(2)]
        new_t = [0.5 * m_t[i][d] + 0.5 * t[b][d] for d in range(2)]
        assert mem.memory_student[i].tolist() == pytest.approx([v / norm(new_s) for v in new_s], abs=TOL)
        assert mem.memory_teacher[i].tolist() == pytest.approx([v / norm(new_t) for v in new_t], abs=TOL)
    for i in (0, 3):
        assert mem.memory_student[i].tolist() == pytest.approx(m_s[i])
        assert mem.memory_teacher[i].tolist() == pytest.approx(m_t[i])

    # Z is kept fixed after the first call; eval mode leaves the memory untouched
    L.crd(t64(t_raw), t64(s_raw), torch.tensor([0, 3]), mem, temperature=T)
    assert mem.z_student.item() == pytest.approx(z_s, rel=1e-12)
    mem.eval()
    before = mem.memory_student.clone()
    L.crd(t64(s_raw), t64(t_raw), torch.tensor([0, 3]), mem, temperature=T)
    assert torch.equal(before, mem.memory_student)
    with pytest.raises(ValueError):
        L.crd(t64(s_raw), t64(t_raw), torch.tensor([0, 3]), mem, contrast_idx=torch.tensor([[1, 2], [3, 0]]))


def test_crd_nce_loss_mask_hand():
    """CMCRD's teacher-correctness mask: a per-anchor factor on both log terms, divisor B."""
    x = [[0.9, 0.1, 0.3], [0.5, 0.05, 0.6]]
    kpn = 2 / 4
    rows = [math.log(r[0] / (r[0] + kpn + 1e-7)) + sum(math.log(kpn / (v + kpn + 1e-7)) for v in r[1:]) for r in x]
    for m in ([1.0, -1.0], [1.0, 0.0], [0.0, 0.0]):
        want = -(m[0] * rows[0] + m[1] * rows[1]) / 2
        assert L.crd_nce_loss(t64(x), 4, t64(m)).item() == pytest.approx(want, abs=TOL)
    assert L.crd_nce_loss(t64(x), 4, t64([1.0, 1.0])).item() == pytest.approx(ref_nce(x, 4), abs=TOL)
    with pytest.raises(ValueError, match="mask"):
        L.crd_nce_loss(t64(x), 4, t64([1.0, 1.0, 1.0]))


def test_crd_score_weights_and_mask_hand():
    """The "nce" reading of CMCRD: each anchor's normalised scores (positive and negatives, both
    directions) times w_b after Z is set from the unweighted scores; the mask on the log terms."""
    m_s = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]]
    m_t = [[0.0, 1.0], [0.8, 0.6], [-0.6, 0.8], [0.0, -1.0]]
    s_raw, t_raw = [[3.0, 4.0], [1.0, 1.0]], [[0.0, 2.0], [1.0, 0.0]]
    index, cidx, T = [1, 2], [[1, 0, 3], [2, 3, 1]], 0.5
    w, m = [1.2, 0.8], [1.0, -1.0]
    mem = L.CRDMemory(n_data=4, feat_dim=2, k=2, momentum=0.5).double()
    mem.memory_student.copy_(t64(m_s))
    mem.memory_teacher.copy_(t64(m_t))
    loss = L.crd(t64(s_raw), t64(t_raw), torch.tensor(index), mem, temperature=T, contrast_idx=torch.tensor(cidx),
                 score_weights=t64(w), mask=t64(m))
    s = [[v / norm(r) for v in r] for r in s_raw]
    t = [[v / norm(r) for v in r] for r in t_raw]
    out_s = [[math.exp(dot(m_t[j], s[b]) / T) for j in cidx[b]] for b in range(2)]
    out_t = [[math.exp(dot(m_s[j], t[b]) / T) for j in cidx[b]] for b in range(2)]
    z_s = sum(sum(r) for r in out_s) / 6 * 4   # Z from the unweighted scores
    z_t = sum(sum(r) for r in out_t) / 6 * 4
    assert mem.z_student.item() == pytest.approx(z_s, rel=1e-9)
    kpn = 2 / 4

    def half(out, z):
        total = 0.0
        for b, row in enumerate(out):
            x = [w[b] * v / z for v in row]
            total += m[b] * (math.log(x[0] / (x[0] + kpn + 1e-7)) + sum(math.log(kpn / (v + kpn + 1e-7)) for v in x[1:]))
        return -total / 2

    assert loss.item() == pytest.approx(half(out_s, z_s) + half(out_t, z_t), abs=TOL)


def test_crd_deterministic_given_seed():
    def run():
        torch.manual_seed(7)
        mem = L.CRDMemory(n_data=10, feat_dim=4, k=5)
        s, t = torch.randn(4, 4), torch.randn(4, 4)
        out = [L.crd(s, t, torch.tensor([0, 2, 5, 9]), mem) for _ in range(3)]
        return torch.stack(out), mem.memory_student.clone()

    (a, ma), (b, mb) = run(), run()
    assert torch.equal(a, b) and torch.equal(ma, mb)


def test_crd_decreases_on_toy_problem():
    torch.manual_seed(0)
    n, d = 8, 4
    teacher = F.normalize(torch.randn(n, d), dim=1)
    student = torch.nn.Parameter(torch.randn(n, d))
    mem = L.CRDMemory(n_data=n, feat_dim=d, k=4096)
    assert mem.k == n - 1
    opt = torch.optim.Adam([student], lr=0.05)
    index = torch.arange(n)
    history = []
    for _ in range(150):
        loss = L.crd(student, teacher, index, mem, temperature=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert np.mean(history[-5:]) < 0.5 * np.mean(history[:5])
    # the student has learned to point at its own teacher
    cos = F.normalize(student.detach(), dim=1) @ teacher.t()
    assert (cos.argmax(dim=1) == index).all()


# ----------------------------------------------------------------------------- argument checks
def _crd_args(**over):
    torch.manual_seed(0)
    mem = L.CRDMemory(n_data=6, feat_dim=3, k=2)
    args = {"student_emb": torch.randn(2, 3), "teacher_emb": torch.randn(2, 3), "index": torch.tensor([0, 1]),
            "memory": mem}
    args.update(over)
    return args


_r = torch.randn
BAD_ARGUMENTS = {
    # shapes: every loss names what it needs (a programming error: ValueError)
    "0-d student": (lambda: L.sp(torch.tensor(1.0), _r(3)), "need a batch axis"),
    "0-d teacher": (lambda: L.pkt(_r(3), torch.tensor(1.0)), "need a batch axis"),
    "batch sizes differ": (lambda: L.sp(_r(3, 2), _r(4, 2)), "batch sizes differ"),
    "kd 1-d logits": (lambda: L.kd(_r(3), _r(3)), r"logits must be \(B, n_classes\)"),
    "kl logits differ": (lambda: L.kl_current_guide(_r(2, 3), _r(2, 4)), "differ in shape"),
    "nst 2-d student": (lambda: L.nst(_r(2, 3), _r(2, 3, 4)), "at least one spatial"),
    "nst 2-d teacher": (lambda: L.nst(_r(2, 3, 4), _r(2, 3)), "at least one spatial"),
    "cdgkd 1-d logits": (lambda: L.cdgkd(_r(3), torch.tensor([0, 1, 0]), [], []), r"logits must be \(B, n_classes\)"),
    "labels 2-d": (lambda: L.cdgkd(_r(2, 3), torch.tensor([[0], [1]]), [], []), r"labels must be \(B,\)"),
    "labels too few": (lambda: L.cdgkd(_r(2, 3), torch.tensor([0]), [], []), r"labels must be \(B,\)"),
    "labels float": (lambda: L.cdgkd(_r(2, 3), torch.tensor([0.0, 1.0]), [], []), "integer class indices"),
    "prototypes of 1-d features": (lambda: L.class_prototypes(_r(4), torch.tensor([0, 1, 0, 1]), 2), r"\(B, D\)"),
    "features 1-d": (lambda: L.prototype_loss(_r(3), torch.tensor([0, 1, 0]), _r(2, 3)), "must agree in D"),
    "prototypes 1-d": (lambda: L.prototype_loss(_r(3, 2), torch.tensor([0, 1, 0]), _r(2)), "must agree in D"),
    "D differs": (lambda: L.prototype_probs(_r(3, 2), torch.tensor([0, 1, 0]), _r(2, 3)), "must agree in D"),
    "rate of a matrix": (lambda: L.convergence_rate(_r(2, 2)), r"p_true must be \(B,\)"),
    # parameters
    "kl T = 0": (lambda: L.kl_current_guide(_r(2, 3), _r(2, 3), 0.0), "temperature must be > 0"),
    "dgkd T = 0": (lambda: L.dgkd(_r(2, 3), [_r(2, 3)], 0.0, [True]), "temperature must be > 0"),
    "dgkd direction": (lambda: L.dgkd(_r(2, 3), [_r(2, 3)], 1.0, [True], "sideways"), "direction must be one of"),
    "dgkd T = 0, no guide kept": (lambda: L.dgkd(_r(2, 3), [_r(2, 3)], 0.0, [False]), "dgkd: temperature must be > 0"),
    "dgkd direction, no guide kept": (lambda: L.dgkd(_r(2, 3), [_r(2, 3)], 1.0, [False], "x"),
                                      "dgkd: direction must be one of"),
    "cdgkd direction": (lambda: L.cdgkd(_r(2, 3), torch.tensor([0, 1]), [_r(2, 3)], [True], kl_direction="x"),
                        "direction must be one of"),
    "kl direction": (lambda: _kl(_r(2, 3), _r(2, 3), 1.0, "x"), "kl direction must be one of"),
    "alpha > 1": (lambda: L.teacher_loss(t64(1.0), t64(1.0), t64(1.0), 0.0, 0.0, 1.5), r"alpha must lie in \[0, 1\]"),
    "beta < 0": (lambda: L.cdgkd(_r(2, 3), torch.tensor([0, 1]), [], [], beta=-0.1), r"beta must lie in \[0, 1\]"),
    "nce one column": (lambda: L.crd_nce_loss(_r(2, 1), 4), r"x must be \(B, K \+ 1\)"),
    "nce 1-d": (lambda: L.crd_nce_loss(_r(3), 4), r"x must be \(B, K \+ 1\)"),
    "nce n_data 0": (lambda: L.crd_nce_loss(_r(2, 3), 0), "n_data must be >= 1"),
    # CRD memory and batch
    "memory n_data 1": (lambda: L.CRDMemory(1, 3), "n_data must be >= 2"),
    "memory feat_dim 0": (lambda: L.CRDMemory(4, 0), "feat_dim must be >= 1"),
    "memory k 0": (lambda: L.CRDMemory(4, 3, k=0), "k must be >= 1"),
    "memory momentum": (lambda: L.CRDMemory(4, 3, momentum=1.5), r"momentum must lie in \[0, 1\]"),
    "labels of 2 dims": (lambda: L.CRDMemory(4, 3).set_labels(torch.zeros(4, 1, dtype=torch.long)), r"labels must be \(4,\)"),
    "labels too short": (lambda: L.CRDMemory(4, 3).set_labels(torch.tensor([0, 1, 0])), r"labels must be \(4,\)"),
    "labels float CRD": (lambda: L.CRDMemory(4, 3).set_labels(torch.tensor([0.0, 1.0, 0.0, 1.0])), "integers"),
    "one class": (lambda: L.CRDMemory(4, 3).set_labels(torch.tensor([1, 1, 1, 1])), "two or more classes"),
    "index 2-d": (lambda: L.CRDMemory(4, 3).check_index(torch.tensor([[0, 1]])), "1-d integer tensor"),
    "index float": (lambda: L.CRDMemory(4, 3).check_index(torch.tensor([0.0, 1.0])), "1-d integer tensor"),
    "index negative": (lambda: L.CRDMemory(4, 3).check_index(torch.tensor([-1, 1])), r"out of range \[0, 4\)"),
    "index = n_data": (lambda: L.CRDMemory(4, 3).check_index(torch.tensor([0, 4])), r"out of range \[0, 4\)"),
    "crd 1-d student": (lambda: L.crd(**_crd_args(student_emb=_r(3))), r"embeddings must be \(B, feat_dim\)"),
    "crd 1-d teacher": (lambda: L.crd(**_crd_args(teacher_emb=_r(3))), r"embeddings must be \(B, feat_dim\)"),
    "crd shapes differ": (lambda: L.crd(**_crd_args(teacher_emb=_r(3, 3))), "differ in shape"),
    "crd dim != memory": (lambda: L.crd(**_crd_args(student_emb=_r(2, 4), teacher_emb=_r(2, 4))), "!= memory feat_dim"),
    "crd T = 0": (lambda: L.crd(**_crd_args(), temperature=0.0), "temperature must be > 0"),
    "crd index count": (lambda: L.crd(**_crd_args(index=torch.tensor([0]))), "1 indices for a batch of 2"),
    "contrast 1-d": (lambda: L.crd(**_crd_args(), contrast_idx=torch.tensor([0, 1])), r"\(B, K \+ 1\)"),
    "contrast rows": (lambda: L.crd(**_crd_args(), contrast_idx=torch.tensor([[0, 2]])), r"\(B, K \+ 1\)"),
    "contrast no negative": (lambda: L.crd(**_crd_args(), contrast_idx=torch.tensor([[0], [1]])), r"\(B, K \+ 1\)"),
    "contrast positives": (lambda: L.crd(**_crd_args(), contrast_idx=torch.tensor([[1, 2], [0, 3]])), "must be the positives"),
    "contrast negative index": (lambda: L.crd(**_crd_args(), contrast_idx=torch.tensor([[0, -1], [1, 2]])), "out of range"),
    "contrast index = n_data": (lambda: L.crd(**_crd_args(), contrast_idx=torch.tensor([[0, 6], [1, 2]])), "out of range"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_bad_arguments_raise_value_error_naming_the_problem(case):
    call, match = BAD_ARGUMENTS[case]
    with pytest.raises(ValueError, match=match):
        call()


def test_boundary_arguments_are_accepted():
    """The limits of every check are inclusive where the docstrings say so: 1-d embeddings (a
    batch of scalars), alpha and beta at 0 and 1, K = 1 negative, n_data = 1 in the NCE loss,
    the smallest memory (n_data 2, feat_dim 1, k 1) and contrast indices up to n_data - 1."""
    s, t = t64([1.0, 2.0, 4.0]), t64([2.0, 1.0, 3.0])
    assert torch.isfinite(L.pkt(s, t)) and torch.isfinite(L.sp(s, t))
    ce, pv, pe = t64(2.0), t64(3.0), t64(5.0)
    assert L.teacher_loss(ce, pv, pe, 0.5, 0.25, 0.0).item() == 2.0
    assert L.teacher_loss(ce, pv, pe, 0.5, 0.25, 1.0).item() == pytest.approx(0.5 * 3.0 + 0.25 * 5.0)
    logits, y = t64([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 1])
    assert L.cdgkd(logits, y, [], [], beta=0.0).item() == pytest.approx(ref_ce(logits.tolist(), [0, 1]))
    assert L.cdgkd(logits, y, [], [], beta=1.0).item() == 0.0
    x = [[0.9, 0.1], [0.5, 0.6]]  # K = 1
    assert L.crd_nce_loss(t64(x), 1).item() == pytest.approx(ref_nce(x, 1), abs=TOL)
    mem = L.CRDMemory(n_data=2, feat_dim=1, k=1)
    assert mem.sample(torch.tensor([1])).tolist() == [[1, 0]]
    loss = L.crd(t64([[1.0]]), t64([[-1.0]]), torch.tensor([1]), mem.double(), contrast_idx=torch.tensor([[1, 0]]))
    assert torch.isfinite(loss)


def test_loss_defaults_are_the_papers():
    """kd T = 4 is tested above; CDGKD beta = 0.5, CRD T = 0.07 and RepDistiller's k = 16384."""
    logits, y, g = t64([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 1]), t64([[0.0, 1.0], [1.0, 1.0]])
    assert L.cdgkd(logits, y, [g], [True]).item() == L.cdgkd(logits, y, [g], [True], beta=0.5).item()
    assert L.cdgkd(logits, y, [g], [True]).item() != L.cdgkd(logits, y, [g], [True], beta=0.6).item()

    def crd_value(**kw):
        torch.manual_seed(3)
        mem = L.CRDMemory(n_data=6, feat_dim=3, k=2).double()
        torch.manual_seed(4)
        return L.crd(torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64),
                     torch.tensor([0, 1]), mem, **kw).item()

    assert crd_value() == crd_value(temperature=0.07) != crd_value(temperature=0.08)
    assert L.CRDMemory(n_data=20000, feat_dim=1).k == 16384


def test_crd_memory_initialisation_is_symmetric_uniform_then_normalised():
    """``uniform(-1/sqrt(D/3), 1/sqrt(D/3))`` rows, L2-normalised, drawn from torch's global
    generator (student bank first): the same draw by hand. Only the direction survives the
    normalisation, so the check is that the range is centred, not its width."""
    torch.manual_seed(11)
    mem = L.CRDMemory(n_data=50, feat_dim=12, k=2)
    torch.manual_seed(11)
    for bank in (mem.memory_student, mem.memory_teacher):
        u = torch.rand(50, 12) * 2.0 - 1.0  # uniform on [-1, 1); the common factor 1/sqrt(D/3) cancels
        assert torch.allclose(bank, u / u.norm(dim=1, keepdim=True), atol=1e-6)
    assert mem.z_student.item() == -1.0 and mem.z_teacher.item() == -1.0


def test_crd_negatives_cover_exactly_the_other_samples():
    """Uniform negatives come from all the other samples (never the positive); class-aware ones
    from all the samples of the other classes (never the anchor's class); ``set_labels(None)``
    returns to uniform. Over many draws every allowed sample appears."""
    torch.manual_seed(0)
    mem = L.CRDMemory(n_data=4, feat_dim=2, k=3)
    seen = lambda anchor: {int(v) for _ in range(60) for v in mem.sample(torch.tensor([anchor]))[0, 1:]}
    assert seen(0) == {1, 2, 3} and seen(3) == {0, 1, 2}
    mem.set_labels(torch.tensor([0, 0, 1, 1]))
    both = mem.sample(torch.tensor([0, 2]))
    assert both[:, 0].tolist() == [0, 2]
    assert seen(0) == {2, 3} and seen(1) == {2, 3} and seen(2) == {0, 1} and seen(3) == {0, 1}
    mixed = [mem.sample(torch.tensor([1, 3])) for _ in range(30)]
    assert {int(v) for m in mixed for v in m[0, 1:]} == {2, 3} and {int(v) for m in mixed for v in m[1, 1:]} == {0, 1}
    mem.set_labels(None)
    assert mem.labels is None and seen(0) == {1, 2, 3}


def test_crd_z_is_set_once_even_when_small():
    """Z is fixed by the first call whatever its value (here far below 1: scores of -1 at T = 0.07)."""
    mem = L.CRDMemory(n_data=2, feat_dim=1, k=1).double()
    mem.memory_student.fill_(1.0)
    mem.memory_teacher.fill_(1.0)
    L.crd(t64([[-1.0]]), t64([[-1.0]]), torch.tensor([0]), mem, contrast_idx=torch.tensor([[0, 1]]))
    z = mem.z_student.item()
    assert 0 < z < 1e-3 and mem.z_teacher.item() == pytest.approx(z)
    L.crd(t64([[1.0]]), t64([[1.0]]), torch.tensor([1]), mem, contrast_idx=torch.tensor([[1, 0]]))
    assert mem.z_student.item() == z and mem.z_teacher.item() == pytest.approx(z)


def test_nst_teacher_teacher_term_is_detached():
    """As RepDistiller's NSTLoss: a teacher that requires grad gets the gradient of the cross term
    ``-2 mean k(s, t)`` only, not of ``mean k(t, t')``."""
    g = torch.Generator().manual_seed(5)
    student = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    teacher = torch.randn(2, 2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    got = torch.autograd.grad(L.nst(student, teacher), teacher)[0]
    f_s = F.normalize(student, dim=2)
    f_t = F.normalize(teacher, dim=2)
    cross = -2.0 * torch.einsum("bin,bjn->bji", f_s, f_t).pow(2).mean()
    want = torch.autograd.grad(cross, teacher)[0]
    assert torch.allclose(got, want, atol=1e-12)
