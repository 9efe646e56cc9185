"""CDGKD's baselines: the Table 3 teacher architectures (CNN+SVM, CNN+LSTM, DGC+JCA, EmotionKD
teacher), the EmotionKD student and AMBOKD; and every new method trains on a fixed batch."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from cmkd.errors import ConfigError
from cmkd.methods import method_class
from cmkd.methods.base import RunContext
from cmkd.methods.ambokd import balance_coefficients, importance_weights
from cmkd.models.base import Output
from cmkd.models.registry import build_model
from cmkd.models.dgc_jca import band_powers
from test_cdgkd import tiny_batch, tiny_spec

ARCHS = ["cnn_svm", "cnn_lstm", "dgc_jca", "emotionkd_teacher", "ambokd"]


def arch_spec(arch, **kw):
    s = tiny_spec(**kw)
    s["architecture"] = arch
    return s


@pytest.mark.parametrize("arch", ARCHS)
def test_architecture_output_shapes(arch):
    torch.manual_seed(0)
    net = build_model(arch_spec(arch))
    b = tiny_batch(6)
    out = net(b)
    assert isinstance(out, Output)
    assert out.logits.shape == (6, 2)
    for k in ("face", "eeg", "embedding", "fused", "hint"):
        assert k in out.features and out.features[k].shape[0] == 6, k
    assert out.features["embedding"].dim() == 2 and out.features["fused"].dim() == 2
    # regression head: one output
    s = arch_spec(arch)
    s["n_outputs"] = 1
    assert build_model(s)(b).logits.shape == (6, 1)


def test_architectures_need_face_and_eeg():
    with pytest.raises(ConfigError, match="modalities"):
        build_model(arch_spec("dgc_jca", modalities=("face",)))
    s = arch_spec("emotionkd_teacher")
    s["model"] = {"d": 30, "heads": 4}
    with pytest.raises(ConfigError, match="model.d"):
        build_model(s)
    s["model"] = {"nosuch": 1}
    with pytest.raises(ConfigError, match="unknown key"):
        build_model(s)


def test_band_powers_pick_the_planted_band():
    t = torch.arange(128) / 32.0
    x = torch.stack([torch.sin(2 * math.pi * 10 * t), torch.sin(2 * math.pi * 6 * t)]).unsqueeze(0)  # (1, 2, 128)
    bp = band_powers(x, 32.0, ((4, 8), (8, 14)))
    assert bp.shape == (1, 2, 2)
    assert bp[0, 0, 1] > bp[0, 0, 0] + 5  # 10 Hz: alpha
    assert bp[0, 1, 0] > bp[0, 1, 1] + 5  # 6 Hz: theta


def test_ambokd_logits_are_the_visual_branch():
    torch.manual_seed(0)
    net = build_model(arch_spec("ambokd")).eval()
    b = tiny_batch(6)
    out = net(b)
    b2 = dict(b, eeg=torch.randn_like(b["eeg"]))
    assert torch.equal(net(b2).logits, out.logits)  # EEG does not change the prediction
    face_only = {"face": b["face"]}
    assert torch.equal(net(face_only).logits, out.logits)  # and is not needed
    assert not torch.equal(net(b2).features["logits_fusion"], out.features["logits_fusion"])


def test_ambokd_balancing_rules():
    # OGM rule by hand: s_v = 0.8, s_e = 0.5 -> rho_v = 1.6; k_v = 1 - tanh(0.5 * 0.6)
    k_v, k_e = balance_coefficients(0.8, 0.5, 0.5)
    assert k_v == pytest.approx(1 - (math.exp(0.6) - 1) / (math.exp(0.6) + 1), rel=1e-9)
    assert k_e == 1.0
    assert balance_coefficients(0.5, 0.5, 0.5) == (1.0, 1.0)
    w_v, w_e = importance_weights(0.8, 0.5)  # errors 0.2, 0.5 -> 2 * 0.2 / 0.7, 2 * 0.5 / 0.7
    assert (w_v, w_e) == pytest.approx((0.4 / 0.7, 1.0 / 0.7))


def test_ambokd_grad_scale_scales_encoder_gradient():
    torch.manual_seed(0)
    net = build_model(arch_spec("ambokd"))
    b = tiny_batch(6)

    def grad(scale):
        net.zero_grad()
        net.grad_scale["face"] = 1.0
        out = net(b)
        net.grad_scale["face"] = scale  # set after the forward, read in backward
        out.logits.sum().backward()
        return next(net.encoders["face"].parameters()).grad.clone()

    net.eval()  # no dropout/BN noise; grad scaling is on in training only, so flip just the flag
    net.training = True
    g1, g05 = grad(1.0), grad(0.25)
    torch.testing.assert_close(g05, 0.25 * g1, rtol=1e-4, atol=1e-8)


def test_cnn_svm_hinge_by_hand():
    torch.manual_seed(0)
    net = build_model(arch_spec("cnn_svm", dropout=0.0))
    m = method_class("cnn_svm")(net, {}, {"svm_l2": 0.01}, "classification", 2)
    b = tiny_batch(4)
    _, terms = m.training_step(b)
    with torch.no_grad():
        out = net(b)
    s = out.logits.tolist()
    y = b["y"].tolist()
    hinge = sum(sum(max(0.0, 1 - s[i][y[i]] + s[i][k]) for k in range(2) if k != y[i]) / 2 for i in range(4)) / 4
    w = net.svm.weight.detach().numpy().astype(np.float64)
    want = hinge + 0.5 * 0.01 * float((w ** 2).sum())
    assert float(terms["hinge"].detach()) == pytest.approx(want, rel=1e-5)
    # the SVM reads detached per-modality decisions: its loss does not reach the encoders
    net.zero_grad()
    terms["hinge"].backward()
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in net.encoders.parameters())
    assert net.svm.weight.grad is not None


class FixedNet(nn.Module):
    def __init__(self, logits, fused):
        super().__init__()
        self.register_buffer("l", torch.tensor(logits))
        self.register_buffer("f", torch.tensor(fused))

    def forward(self, batch):
        return Output(self.l, {"fused": self.f})


class StudentStub(nn.Module):
    def __init__(self, logits, fused):
        super().__init__()
        self.l = nn.Parameter(torch.tensor(logits))
        self.f = nn.Parameter(torch.tensor(fused))

    def forward(self, batch):
        return Output(self.l, {"fused": self.f})


def test_emotionkd_loss_by_hand():
    ls, lt = [[0.2, -0.1], [0.0, 0.5]], [[1.0, 0.0], [0.3, 0.3]]
    fs, ft = [[1.0], [2.0]], [[0.5, 0.0, 1.0], [1.0, 1.0, -1.0]]
    y = [0, 1]
    m = method_class("emotionkd")(StudentStub(ls, fs), {"teacher": FixedNet(lt, ft)},
                                  {"e1": 1.0, "e2": 0.1, "e3": 2.0}, "classification", 2)
    b = {"y": torch.tensor(y)}
    m.build_regressor(b)
    with torch.no_grad():
        m.regressor.weight.copy_(torch.tensor([[1.0], [0.0], [-1.0]]))
        m.regressor.bias.zero_()

    def softmax(r):
        e = [math.exp(v) for v in r]
        return [v / sum(e) for v in e]

    ce = -sum(math.log(softmax(ls[i])[y[i]]) for i in range(2)) / 2
    kl = sum(sum(softmax(lt[i])[c] * math.log(softmax(lt[i])[c] / softmax(ls[i])[c]) for c in range(2)) for i in range(2)) / 2
    reg = [[fs[i][0], 0.0, -fs[i][0]] for i in range(2)]
    mse = sum((reg[i][j] - ft[i][j]) ** 2 for i in range(2) for j in range(3)) / 6
    _, terms = m.training_step(b)
    assert float(terms["ce"].detach()) == pytest.approx(ce, rel=1e-5)
    assert float(terms["kd"].detach()) == pytest.approx(0.1 * kl, rel=1e-5)
    assert float(terms["feat"].detach()) == pytest.approx(2.0 * mse, rel=1e-5)


# ------------------------------------------------------------------ every new method learns a fixed batch
def _teacher():
    torch.manual_seed(1)
    return build_model(tiny_spec()).eval()


CASES = {
    "proto_teacher": dict(spec=tiny_spec(), teachers=lambda: {}, params={"alpha": 0.5}),
    "cdgkd": dict(spec=tiny_spec(("face",)), teachers=lambda: {"teacher": _teacher(), "ta1": _teacher()}, params={}),
    "emotionkd": dict(spec=tiny_spec(("face",)), teachers=lambda: {"teacher": _teacher()}, params={"feedback": False}),
    "ambokd": dict(spec=arch_spec("ambokd"), teachers=lambda: {}, params={}),
    "cnn_svm": dict(spec=arch_spec("cnn_svm"), teachers=lambda: {}, params={}),
    "cnn_lstm": dict(spec=arch_spec("cnn_lstm"), teachers=lambda: {}, params={}),
    "dgc_jca": dict(spec=arch_spec("dgc_jca"), teachers=lambda: {}, params={}),
    "emotionkd_teacher": dict(spec=arch_spec("emotionkd_teacher"), teachers=lambda: {}, params={}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_method_loss_decreases_on_a_fixed_batch(name):
    from cmkd.train import Part

    case = CASES[name]
    torch.manual_seed(0)
    net = build_model(case["spec"])
    m = method_class(name)(net, case["teachers"](), case["params"], "classification", 2, context=RunContext(seed=0))
    b = tiny_batch(12)
    part = Part(x={"face": b["face"], "eeg": b["eeg"]}, y=b["y"], index=np.arange(12))
    opt = torch.optim.Adam(m.trainable_parameters(), lr=3e-3)
    if hasattr(m, "configure"):
        m.configure(parts={"train": part}, device=torch.device("cpu"), optimizer=opt)
    m.train()
    m.on_epoch_start(1, torch.Generator().manual_seed(0))
    if name == "cdgkd":
        m.params["stochastic"] = False  # the same guides every step: a fixed objective
    losses = []
    for _ in range(12):
        _, terms = m.training_step(b)
        total = sum(terms.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < np.mean(losses[:3]), losses


def test_methods_reject_the_wrong_architecture():
    net = build_model(tiny_spec())
    for name in ("cnn_svm", "dgc_jca", "ambokd"):
        with pytest.raises(ConfigError, match="architecture"):
            method_class(name)(net, {}, {}, "classification", 2)


def test_emotionkd_bad_use_names_the_config_key():
    student = build_model(tiny_spec(("face",), dropout=0.0))
    ctx = RunContext(key="ekd")
    with pytest.raises(ConfigError, match=r"^methods\.ekd: soft-label distillation needs a classification"):
        method_class("emotionkd")(student, {"teacher": _teacher()}, {}, "regression", 1, context=ctx)
    with pytest.raises(ConfigError, match=r"^methods\.ekd\.requires: needs a 'teacher'"):
        method_class("emotionkd")(student, {}, {}, "classification", 2, context=ctx)


# ------------------------------------------------------------------ EmotionKD's feedback phase
def _emotionkd_feedback(params=None, n=16):
    from cmkd.train import Part

    torch.manual_seed(0)
    student = build_model(tiny_spec(("face",), dropout=0.0))
    teacher = _teacher()
    from cmkd.methods.base import RunContext

    m = method_class("emotionkd")(student, {"teacher": teacher}, {"feedback_every": 2, **(params or {})},
                                  "classification", 2, context=RunContext(seed=0))
    b = tiny_batch(n)
    train = Part(x={"face": b["face"], "eeg": b["eeg"]}, y=b["y"], index=np.arange(n))
    vb = tiny_batch(n, seed=1)
    val = Part(x={"face": vb["face"], "eeg": vb["eeg"]}, y=vb["y"], index=np.arange(n))
    val.groups = np.repeat(np.arange(n // 2), 2)  # two segments per trial
    parts = {"train": train, "val": val, "feedback": train}  # as the loop gives it (feedback_part "train")
    opt = torch.optim.Adam(m.trainable_parameters(), lr=1e-3)
    m.configure(parts=parts, device=torch.device("cpu"), optimizer=opt)
    return m, teacher, parts, opt, b


def test_emotionkd_feedback_updates_the_teacher_not_the_student():
    m, teacher, parts, opt, b = _emotionkd_feedback()
    assert m.params["feedback"] is True  # the default: the row is EmotionKD with its feedback phase
    # the feedback's data are the training part; the whole validation part selects, as for every row
    assert m._fb_part is parts["train"] and len(parts["val"]) == 16
    fed = []
    h = teacher.register_forward_pre_hook(lambda mod, args: fed.append(args[0]["face"].detach().clone()))
    m.feedback_step(b)
    h.remove()
    val_x = parts["val"].x["face"]
    assert fed and not any(bool((f[:, None] == val_x[None]).flatten(2).all(-1).any()) for f in fed)  # no validation segment
    t_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    s_before = {k: v.clone() for k, v in m.student.state_dict().items()}
    m.train()
    assert not teacher.training  # the teacher stays in eval mode
    rec = m.feedback_step(b)
    assert math.isfinite(rec["fb_student_ce"]) and math.isfinite(rec["fb_teacher_ce"])
    changed = [k for k, v in teacher.state_dict().items() if not torch.equal(v, t_before[k])]
    assert changed  # the teacher moved
    for k, v in m.student.state_dict().items():  # the student (parameters and BN statistics) did not
        assert torch.equal(v, s_before[k]), k
    assert all(p.grad is None for p in m.student.parameters())


def test_emotionkd_feedback_gradient_reaches_the_teacher_through_the_temporary_student():
    """With lambda_t = 0 the teacher's update comes only through theta_ts(theta_T) (second order)."""
    m, teacher, parts, opt, b = _emotionkd_feedback({"lambda_t": 0.0})
    m.train()
    temp, buffers, loss = m.temporary_student(b)
    from torch.func import functional_call

    out = functional_call(m.student, (temp, buffers), (b,))
    l = m.task_loss(out.logits, b["y"])
    grads = torch.autograd.grad(l, [q for q in teacher.parameters()], allow_unused=True)
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)


def test_emotionkd_feedback_runs_every_k_steps_and_off_leaves_the_teacher_frozen():
    m, teacher, parts, opt, b = _emotionkd_feedback({"feedback_every": 3})
    m.train()
    for _ in range(6):
        _, terms = m.training_step(b)
        opt.zero_grad()
        sum(terms.values()).backward()
        opt.step()
        m.after_step(b)
    assert [r["step"] for r in m.feedback_log] == [3, 6]
    off, teacher_off, parts_off, opt_off, b = _emotionkd_feedback({"feedback": False})
    assert len(parts_off["val"]) == 16  # the whole validation part selects
    assert not off.teachers_trainable and all(not p.requires_grad for p in teacher_off.parameters())
    off.train()
    before = {k: v.clone() for k, v in teacher_off.state_dict().items()}
    for _ in range(6):
        _, terms = off.training_step(b)
        opt_off.zero_grad()
        sum(terms.values()).backward()
        opt_off.step()
        off.after_step(b)
    assert not off.feedback_log
    for k, v in teacher_off.state_dict().items():
        assert torch.equal(v, before[k]), k
    with pytest.raises(ConfigError, match="feedback_every"):
        method_class("emotionkd")(build_model(tiny_spec(("face",))), {"teacher": _teacher()},
                                  {"feedback_every": 0}, "classification", 2)
