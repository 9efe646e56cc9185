"""The CGAN baseline of the MKD comparison (cmkd.methods.cgan, cmkd.models.cgan_net): the loss values
against hand-computed ones, the generator's gradient through the discriminator, the discriminator's
own step, and a student that reads no EEG at test time."""
from __future__ import annotations

import math

import pytest
import torch

from cmkd.methods.base import RunContext
from cmkd.methods.cgan import CGAN, discriminator_loss, generator_loss
from cmkd.models.base import Output
from cmkd.models.cgan_net import CGANStudentNet

N_SAMPLES = 64


def _spec(eeg_dim=5):
    return {"architecture": "cgan_student", "modalities": ["eog"], "model": {"eeg_dim": eeg_dim, "noise_dim": 3, "gen_hidden": 8},
            "encoders": {"eog": {"name": "eog_cnn", "width": 4, "depth": 2}},
            "inputs": {"eog": {"shape": [2, N_SAMPLES], "sampling_rate": 32}}, "head": {"hidden": 8, "dropout": 0.0},
            "n_outputs": 2}


class _Teacher(torch.nn.Module):
    """A stand-in for the MKD teacher: reads EEG, returns an ``eeg`` feature (B, 5)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3 * N_SAMPLES, 5)
        self.cls = torch.nn.Linear(5, 2)

    def forward(self, batch):
        f = self.lin(batch["eeg"].flatten(1))
        return Output(self.cls(f), {"eeg": f})


class _Part:
    def __init__(self, batch):
        self._b = batch

    def __len__(self):
        return len(self._b["y"])

    def batch(self, idx, device):
        return {k: v[idx] for k, v in self._b.items()}


def _batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"eog": torch.randn(n, 2, N_SAMPLES, generator=g), "eeg": torch.randn(n, 3, N_SAMPLES, generator=g),
            "y": torch.tensor([0, 1] * (n // 2))}


def _method(**params):
    torch.manual_seed(0)
    student = CGANStudentNet(_spec())
    m = CGAN(student, {"teacher": _Teacher()}, params, "classification", 2, context=RunContext(seed=0, key="mkd_cgan"))
    opt = torch.optim.Adam(m.trainable_parameters(), lr=1e-2)
    m.configure(parts={"train": _Part(_batch())}, device=torch.device("cpu"), optimizer=opt)
    return m, opt


# ----------------------------------------------------------------------------- the losses by hand
def test_discriminator_loss_by_hand():
    # D(x|c) = sigmoid(2), D(G(z|c)|c) = sigmoid(-1): -log sigmoid(2) - log(1 - sigmoid(-1))
    want = math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))   # 0.126928 + 0.313262
    got = discriminator_loss(torch.tensor([2.0]), torch.tensor([-1.0]))
    assert got.item() == pytest.approx(want, abs=1e-6)
    assert got.item() == pytest.approx(0.440190, abs=1e-6)
    # means over the batch: real [2, 0], fake [-1, 1]
    want2 = (math.log(1 + math.exp(-2)) + math.log(2)) / 2 + (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(1))) / 2
    assert discriminator_loss(torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 1.0])).item() == pytest.approx(want2, abs=1e-6)


def test_generator_loss_by_hand():
    fake = torch.tensor([-1.0, 0.5])
    p = [1 / (1 + math.exp(1.0)), 1 / (1 + math.exp(-0.5))]   # D(G(z|c)|c)
    nonsat = -(math.log(p[0]) + math.log(p[1])) / 2             # -mean log D(G)
    minimax = (math.log(1 - p[0]) + math.log(1 - p[1])) / 2     # mean log(1 - D(G))
    assert generator_loss(fake, "nonsaturating").item() == pytest.approx(nonsat, abs=1e-6)
    assert generator_loss(fake, "minimax").item() == pytest.approx(minimax, abs=1e-6)
    with pytest.raises(ValueError):
        generator_loss(fake, "wasserstein")


# ----------------------------------------------------------------------------- gradients
def test_the_generator_learns_through_the_discriminator_and_the_discriminator_takes_none_from_it():
    m, _ = _method(lambda_adv=1.0)
    m.train()
    batch = _batch(seed=1)
    _, terms = m.training_step(batch)
    m.student.zero_grad(set_to_none=True)
    m.discriminator.zero_grad(set_to_none=True)
    terms["adv"].backward()
    g = [p.grad for p in m.student.generator.parameters()]
    assert all(x is not None for x in g) and sum(float(x.abs().sum()) for x in g) > 0, "no gradient reached G"
    assert all(p.grad is None for p in m.discriminator.parameters()), "L_G changed D's gradients"
    # the classifier's CE alone also trains G (its output feeds the head), but the adversarial term is what
    # carries D's signal: with lambda_adv 0 the term is 0
    m0, _ = _method(lambda_adv=0.0)
    m0.train()
    _, t0 = m0.training_step(batch)
    assert t0["adv"].item() == 0.0


def test_the_discriminator_step_lowers_its_loss_on_a_fixed_batch():
    m, _ = _method(d_steps=1, d_lr=1e-2)
    m.train()
    batch = _batch(seed=2)
    with torch.no_grad():
        out = m.student(batch)
    real, gen = m._real(batch), out.features["generated"]
    c = m._condition(out.features["eog"], batch["y"])
    d = m.discriminator
    before = discriminator_loss(d(real, c), d(gen, c)).item()
    w = [p.detach().clone() for p in d.parameters()]
    for _ in range(20):
        m._discriminator_steps(real, gen, c)
    after = discriminator_loss(d(real, c), d(gen, c)).item()
    assert any(not torch.equal(a, p) for a, p in zip(w, d.parameters())), "D did not step"
    assert after < before


def test_the_discriminator_is_conditioned_on_the_label_when_asked():
    m, _ = _method(condition_label=True)
    assert m.discriminator.net[0].in_features == 5 + int(m.student.encoder.out_dim) + 2
    m, _ = _method(condition_label=False)
    assert m.discriminator.net[0].in_features == 5 + int(m.student.encoder.out_dim)


# ----------------------------------------------------------------------------- test time
def test_the_student_reads_no_eeg_and_is_deterministic_in_eval_mode():
    torch.manual_seed(0)
    net = CGANStudentNet(_spec()).eval()
    batch = _batch()
    eog_only = {"eog": batch["eog"]}
    a = net(eog_only)
    b = net({**eog_only, "eeg": torch.full_like(batch["eeg"], 1e6)})   # an EEG array, if given, is ignored
    assert torch.equal(a.logits, b.logits)
    assert torch.equal(net(eog_only).logits, a.logits), "eval must not draw noise"
    assert a.features["generated"].shape == (6, 5)
    net.train()
    torch.manual_seed(1)
    assert not torch.equal(net(eog_only).features["generated"], a.features["generated"]), "training draws z"


def test_configure_refuses_a_generator_of_the_wrong_width():
    from cmkd.errors import ConfigError

    torch.manual_seed(0)
    student = CGANStudentNet(_spec(eeg_dim=7))
    m = CGAN(student, {"teacher": _Teacher()}, {}, "classification", 2, context=RunContext(seed=0, key="mkd_cgan"))
    with pytest.raises(ConfigError, match="model.eeg_dim"):
        m.configure(parts={"train": _Part(_batch())}, device=torch.device("cpu"), optimizer=None)


def test_one_training_step_changes_the_student_not_the_teacher():
    m, opt = _method()
    m.train()
    batch = _batch(seed=3)
    s0 = [p.detach().clone() for p in m.student.parameters()]
    t0 = [p.detach().clone() for p in m.teachers["teacher"].parameters()]
    _, terms = m.training_step(batch)
    assert set(terms) == {"ce", "adv"} and all(torch.isfinite(v) for v in terms.values())
    opt.zero_grad(set_to_none=True)
    sum(terms.values()).backward()
    opt.step()
    assert any(not torch.equal(a, p) for a, p in zip(s0, m.student.parameters()))
    assert all(torch.equal(a, p) for a, p in zip(t0, m.teachers["teacher"].parameters()))
    assert not any(p is q for p in m.trainable_parameters() for q in m.discriminator.parameters()), \
        "the discriminator has its own optimiser"
    assert set(m.diagnostics) == {"d_loss", "d_real", "d_fake"}
