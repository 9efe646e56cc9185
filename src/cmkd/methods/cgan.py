"""CGAN baseline of the MKD comparison (seed 004 §4.4, Table 1): a conditional GAN that generates
the features of the modality missing at test time (EEG) from the student's modality (EOG).

**A reconstruction.** Seed 004 names CGAN as a baseline of Table 1 and says only that it
"employs knowledge transfer techniques" but "overlooks the extraction and integration of
heterogeneous features for each modality"; the table's body and the baseline's details are not
in the seed. What runs here is the project's reading: the conditional GAN of Mirza & Osindero
(2014, "Conditional Generative Adversarial Nets", arXiv:1411.1784) used to transfer knowledge
from the EEG+EOG teacher to the EOG student by generating the teacher's EEG features.

Networks:

- the student (:class:`cmkd.models.cgan_net.CGANStudentNet`, ``architecture: cgan_student``):
  EOG encoder ``E``, generator ``G(z | c)`` with ``c = E(x_eog)``, classifier ``C([c, G(z | c)])``;
  evaluated and saved alone, it reads EOG only (z = 0 in eval mode);
- the discriminator ``D(x | c')`` (this method's, a training-time module, neither saved nor
  evaluated): an MLP over ``[x, c']`` with the condition ``c' = [c, onehot(y)]``
  (``condition_label: true``, the default; Mirza & Osindero condition both networks on ``y``,
  "class labels or data from other modalities"; the generator cannot read the label, unknown at
  test time, so only the discriminator does) or ``c' = c``. The condition is detached in ``D``'s input;
- the real samples ``x``: the frozen teacher's feature ``teacher_feature`` (default ``eeg``: the
  MKD teacher's EEG stream, last layer, mean over tokens), of the same batch.

Objective (Mirza & Osindero 2014, eq. (2))::

    min_G max_D V(D, G) = E_x[log D(x | c)] + E_z[log(1 − D(G(z | c) | c))]

- discriminator step (:func:`discriminator_loss`, ``d_steps`` Adam steps per training step, its own
  optimiser at ``d_lr``, null: the student's learning rate), on the batch before the student's step:
  ``L_D = −(mean log D(x | c) + mean log(1 − D(G(z | c) | c)))`` with ``G``'s output detached;
- student (encoder, generator, classifier), the terms returned to the training loop:
  ``L = L_CE(y, C([c, G(z | c)])) + lambda_adv · L_G`` with (:func:`generator_loss`)
  ``g_loss: nonsaturating`` (default) ``L_G = −mean log D(G(z | c) | c)`` (Goodfellow et al. 2014
  §3: the same fixed point, stronger gradients early in training), or ``g_loss: minimax``
  ``L_G = mean log(1 − D(G(z | c) | c))`` (eq. (2) as written). ``D``'s parameters take no gradient
  from ``L_G`` (the gradient reaches ``G`` through ``D``'s input).

``D`` is an MLP ``Linear(d_x + d_c', d_hidden) -> LeakyReLU(0.2) -> Linear(d_hidden, 1)`` (one
logit; ``D = sigmoid(logit)``), built in :meth:`CGAN.configure` from the real widths. For
regression the label condition is the target itself (one column). Diagnostics: ``d_loss`` (the
last discriminator step's loss), ``d_real`` / ``d_fake`` (mean ``D`` on real and generated).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cmkd.errors import ConfigError
from cmkd.methods.base import Method
from cmkd.methods.zoo_common import feature, student_probe, where


# ----------------------------------------------------------------------------- the losses
def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``−(mean log D(x|c) + mean log(1 − D(G(z|c)|c)))`` (Mirza & Osindero 2014, eq. (2), the
    discriminator's side, negated to be minimised); ``D = sigmoid(logit)``."""
    return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def generator_loss(fake_logits: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    """The generator's side of eq. (2) of Mirza & Osindero 2014: ``minimax``
    ``mean log(1 − D(G(z|c)|c))``; ``nonsaturating`` ``−mean log D(G(z|c)|c)`` (Goodfellow et al.
    2014 §3)."""
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()          # log(1 − sigmoid(l)) = −softplus(l)
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()          # −log sigmoid(l) = softplus(−l)
    raise ValueError(f"generator_loss: kind must be 'minimax' or 'nonsaturating', got {kind!r}")


class Discriminator(nn.Module):
    """``D(x | c)``: one logit from the concatenation of a sample ``x`` and its condition ``c``."""

    def __init__(self, x_dim: int, c_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(x_dim + c_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, c], dim=1)).squeeze(1)


# ----------------------------------------------------------------------------- the method
class CGAN(Method):
    """Conditional-GAN knowledge transfer (see the module docstring)."""

    roles = ("teacher",)

    def __init__(self, student, teachers, params, task, n_classes):
        super().__init__(student, teachers, params, task, n_classes)
        if "teacher" not in self.teachers:
            raise ConfigError(f"{self.method_key}.requires: needs a 'teacher' checkpoint (got roles {sorted(self.teachers)})")
        for name in ("generate", "modality"):
            if not hasattr(student, name):
                raise ConfigError(f"{self.method_key}.architecture: the CGAN method needs the student architecture "
                                  f"'cgan_student' (a generator of the missing modality's features)")
        # a plain attribute holder, not a sub-module: D is not in the student's optimiser (its own below)
        self._d: dict = {}
        self.diagnostics = {}

    @property
    def discriminator(self) -> Discriminator | None:
        return self._d.get("net")

    def _condition(self, cond: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c = cond.detach()
        if not self.params["condition_label"]:
            return c
        if self.task == "regression":
            lab = y.float().reshape(-1, 1)
        else:
            lab = F.one_hot(y.long(), self.n_classes).to(c.dtype)
        return torch.cat([c, lab], dim=1)

    def _real(self, batch) -> torch.Tensor:
        t_out = self.teacher_outputs(batch)["teacher"]
        x = feature(t_out, self.params["teacher_feature"], where(self, "teacher_feature"), "teacher")
        return x.reshape(x.shape[0], -1).detach()

    @torch.no_grad()
    def _probe(self, parts, device):
        s_out, batch = student_probe(self.student, parts, device, "cgan")
        return s_out, self._real(batch), batch

    def configure(self, parts=None, device=None, optimizer=None, **_):
        s_out, real, batch = self._probe(parts, device)
        gen = s_out.features["generated"]
        if gen.shape[1] != real.shape[1]:
            raise ConfigError(
                f"{self.method_key}.model.eeg_dim: the generator makes {gen.shape[1]} features, the teacher's "
                f"{self.params['teacher_feature']!r} feature has {real.shape[1]} (set model.eeg_dim to {real.shape[1]})")
        c = self._condition(s_out.features[self.student.modality], batch["y"])
        net = Discriminator(real.shape[1], c.shape[1], int(self.params["d_hidden"]))
        net.to(device if device is not None else real.device)
        if self.params["d_lr"] is not None:
            lr = float(self.params["d_lr"])
        elif optimizer is not None:
            lr = float(optimizer.param_groups[0]["lr"])
        else:
            lr = 1.0e-3
        self._d = {"net": net, "opt": torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.999))}

    def train(self, mode: bool = True):
        super().train(mode)
        if self._d:
            self._d["net"].train(mode)
        return self

    def _discriminator_steps(self, real, gen, c) -> None:
        net, opt = self._d["net"], self._d["opt"]
        net.requires_grad_(True)
        with torch.enable_grad():
            for _ in range(int(self.params["d_steps"])):
                loss = discriminator_loss(net(real, c), net(gen.detach(), c))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        self.diagnostics = {"d_loss": float(loss.detach())}

    def training_step(self, batch):
        if not self._d:
            raise RuntimeError("cgan: call configure(parts=..., device=..., optimizer=...) before training "
                               "(it builds the discriminator)")
        out = self.student(batch)
        real = self._real(batch)
        gen = out.features["generated"]
        c = self._condition(out.features[self.student.modality], batch["y"])
        self._discriminator_steps(real, gen, c)
        net = self._d["net"]
        net.requires_grad_(False)  # L_G reaches G through D's input; D's weights take no gradient from it
        fake_logits = net(gen, c)
        with torch.no_grad():
            self.diagnostics.update(d_real=float(torch.sigmoid(net(real, c)).mean()),
                                    d_fake=float(torch.sigmoid(fake_logits).mean()))
        terms = {"ce": self.task_loss(out.logits, batch["y"]),
                 "adv": float(self.params["lambda_adv"]) * generator_loss(fake_logits, self.params["g_loss"])}
        return out.logits, terms


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "cgan": {
        "roles": ["teacher"],
        "description": "conditional GAN generating the teacher's EEG features from the student's (Mirza & Osindero 2014; "
                       "MKD Table 1's CGAN baseline, reconstructed)",
        "params": {
            "lambda_adv": {"default": 1.0, "lo": 0.0, "doc": "weight of the generator's adversarial term beside the CE"},
            "g_loss": {"default": "nonsaturating", "kind": "choice", "choices": ["nonsaturating", "minimax"],
                       "doc": "the generator's loss: -log D(G) (Goodfellow et al. 2014 §3) or log(1 - D(G)) (eq. (2))"},
            "condition_label": {"default": True, "kind": "bool",
                                "doc": "the discriminator's condition holds the label beside the student's features"},
            "teacher_feature": {"default": "eeg", "kind": "str", "doc": "the teacher's feature the generator imitates"},
            "d_hidden": {"default": 64, "kind": "int", "lo": 1, "doc": "width of the discriminator's hidden layer"},
            "d_steps": {"default": 1, "kind": "int", "lo": 1, "doc": "discriminator steps per training step"},
            "d_lr": {"default": None, "lo": 0.0, "lo_open": True, "nullable": True,
                     "doc": "the discriminator's Adam step; null: the student's learning rate"},
        },
    },
}

METHODS = {"cgan": CGAN}
