"""CDGKD §3.2: cross-modal densely guided knowledge distillation (eqs. 7-9)."""
from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F

from cmkd import losses
from cmkd.errors import ConfigError
from cmkd.methods.base import Method


#: ``drop_rule`` -> the least number of guides kept per batch, given the number of guides of the level
DROP_RULES = {
    "authors": lambda n_guides: 0,                          # S_i may be empty at every level
    "per_level": lambda n_guides: 0 if n_guides == 1 else 1,  # 912213b: only a single-guide level may drop all
}


class CDGKD(Method):
    """A TA or the student of CDGKD, trained with eq. (9):

    ``L_CDGKD = (1 - beta) * L_CE + beta * 1/|S_i| * sum_{j in S_i} KL_j``

    - Guides (eqs. 7-8): every checkpoint in ``requires`` (variadic roles), e.g.
      ``requires: {teacher: teacher_proto, ta1: cdgkd_ta1, ta2: cdgkd_ta2}`` for the student and
      ``{teacher: teacher_proto, ta1: cdgkd_ta1}`` for the second TA. Who guides whom is the
      config's ``requires``, so level-by-level training is the workflow DAG: each TA is a
      separate job that needs its higher levels' ``model.pt``. Guides are frozen, each sees its
      own modalities of the batch (the teacher and TAs face + EEG, the student face only).
    - TAs (§3.2) are config entries of this class with ``modalities: teacher`` and a simplified
      EEG encoder (``encoders: {eeg: {num_T: .., num_S: ..}}``), the visual encoder unchanged.
    - ``KL_j``: eq. (9) writes ``KL(l_{A_i} || l_{A_{i-j}})``, the current network first.
      ``kl_direction: current_guide`` (default, the equation) is
      :func:`cmkd.losses.kl_current_guide`, ``T^2 KL(softmax(s/T) || softmax(g/T))``;
      ``kl_direction: guide_current`` is Hinton's/DGKD's direction, :func:`cmkd.losses.kd`,
      ``T^2 KL(softmax(g/T) || softmax(s/T))`` (the behaviour before the option existed). At the
      default ``temperature = 1`` both are plain KLs between softmax outputs. The direction in
      use is in the run's ``metrics.json`` (``method_params``). The whole loss is
      :func:`cmkd.losses.cdgkd`. For regression, ``KL_j`` becomes the MSE to guide j's output
      (symmetric: the direction does not apply).
    - Stochastic learning strategy (``stochastic: true``): per batch, each guide is kept
      independently with probability ``keep_prob`` (0.5, DGKD's drop rate). What happens when
      every guide is dropped is ``drop_rule`` (the paper does not say; the authors' code does):

      * ``drop_rule: authors`` (default): the authors' rule at every level (their code,
        github.com/Frostfreee/CDGKD ``code/distillation_training/models/DGKD.py``, ``train_step``:
        each KD loss is kept if ``random.uniform(0, 1) > droprate``, droprate 0.5, and with none
        kept the KD loss is 0, for TA 1, TA 2 and the student alike): each guide is drawn
        independently and nothing is restored, so ``S_i`` may be empty at every level (TA 1 with
        its one guide, TA 2 with two, the student with three; probability
        ``(1 - keep_prob)^|guides|`` per batch). An empty ``S_i`` skips the KD term for that batch
        (the loss is ``(1 - beta) L_CE``).
      * ``drop_rule: per_level``: the rule this benchmark ran before (912213b): a level with a
        single guide (TA 1) may drop it, a level with several guides keeps at least one (dropped
        guides drawn uniformly are restored up to one).

      ``min_keep`` (default ``null``: from ``drop_rule``) overrides the rule with a fixed floor:
      if fewer than ``min_keep`` guides are kept, dropped guides drawn uniformly are restored up to
      ``min_keep``. ``stochastic: false`` uses every guide (CDGKD Table 5, variant 4).
      ``|S_i|`` is the number kept (a mean, eq. 9). The rule in use is in the run's
      ``metrics.json`` (``method_params``) and in the tables' captions.
    - Randomness: the keep flags come from a private ``torch.Generator`` seeded once, at the first
      ``on_epoch_start``, from the run seed (``context.seed``, given at construction) mixed with a
      constant, so the subsets are reproducible for a seed and differ across seeds, and the data
      order (the loop's generator) is the same as for every other method of that seed. Without a
      run seed the seed is drawn from the loop's generator instead.

    Terms: ``ce = (1 - beta) L_CE``, ``kd = beta * mean_j KL_j``. Diagnostic: ``n_guides`` (the
    mean number of guides kept per batch). Params: ``beta`` (0.5), ``temperature`` (1.0),
    ``stochastic`` (true), ``keep_prob`` (0.5), ``drop_rule`` (``authors``), ``min_keep``
    (``null``), ``kl_direction`` (``current_guide``).
    """

    SALT = 0xCD6

    def __init__(self, student, teachers, params, task, n_classes):
        super().__init__(student, teachers, params, task, n_classes)
        if not self.teachers:
            raise ConfigError(f"{self.method_key}.requires: CDGKD needs at least one guide (teacher, TAs)")
        p, where = self.params, self.params_key
        mk = p["min_keep"]
        if mk is not None and (isinstance(mk, bool) or not isinstance(mk, int) or not 0 <= mk <= len(self.teachers)):
            raise ConfigError(f"{where}.min_keep: must be null (from drop_rule) or an integer in "
                              f"[0, {len(self.teachers)}] (the number of guides), got {mk!r}")
        if p["drop_rule"] not in DROP_RULES:
            raise ConfigError(f"{where}.drop_rule: must be one of {list(DROP_RULES)}, got {p['drop_rule']!r}")
        #: the floor on the number of guides kept per batch: ``min_keep`` if given, else ``drop_rule``'s
        self.min_keep = int(mk) if mk is not None else DROP_RULES[p["drop_rule"]](len(self.teachers))
        if p["kl_direction"] not in losses.KL_DIRECTIONS:
            raise ConfigError(f"{where}.kl_direction: must be one of {list(losses.KL_DIRECTIONS)}, "
                              f"got {p['kl_direction']!r}")
        self.guide_roles = list(self.teachers)
        self.rng: torch.Generator | None = None
        self.diagnostics: dict[str, float] = {}

    def _seed_rng(self, generator: torch.Generator | None) -> None:
        seed = self.context.seed
        if seed is not None:
            s = zlib.crc32(f"cdgkd:{int(seed)}:{self.SALT}".encode())
        elif generator is not None:
            s = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        else:
            s = self.SALT
        self.rng = torch.Generator().manual_seed(int(s))

    def on_epoch_start(self, epoch, generator):
        if self.rng is None:
            self._seed_rng(generator)

    def sample_keep(self) -> list[bool]:
        """The guides of this batch: all of them, or a random subset of at least :attr:`min_keep`
        guides (stochastic; possibly empty under ``drop_rule: authors``)."""
        n = len(self.guide_roles)
        if not self.params["stochastic"]:
            return [True] * n
        if self.rng is None:
            self._seed_rng(None)
        keep = (torch.rand(n, generator=self.rng) < float(self.params["keep_prob"])).tolist()
        while sum(keep) < self.min_keep:
            dropped = [i for i, k in enumerate(keep) if not k]
            keep[dropped[int(torch.randint(0, len(dropped), (1,), generator=self.rng))]] = True
        return keep

    def training_step(self, batch):
        out = self.student(batch)
        guides = self.teacher_outputs(batch)
        keep = self.sample_keep() if self.training else [True] * len(self.guide_roles)
        logits = [guides[r].logits for r in self.guide_roles]
        b = float(self.params["beta"])
        y = batch["y"]
        if self.task == "regression":
            kept = [g for g, k in zip(logits, keep) if k]
            dist = torch.stack([F.mse_loss(out.logits, g) for g in kept]).mean() if kept else (out.logits * 0).sum()
            terms = {"ce": (1 - b) * self.task_loss(out.logits, y), "kd": b * dist}
        else:
            dist = losses.dgkd(out.logits, logits, float(self.params["temperature"]), keep,
                               self.params["kl_direction"])
            terms = {"ce": (1 - b) * self.task_loss(out.logits, y), "kd": b * dist}
        self.last_keep = keep
        self.diagnostics = {"n_guides": float(sum(keep))}
        return out.logits, terms


# registry entries: read by cmkd.methods with ast, without importing this module (literals only)
REGISTER = {
    "cdgkd": {"variadic_roles": True, "description": "CDGKD cross-modal densely guided KD (eq. 7-9)",
              "search": {"beta": "mix", "temperature": "temperature"},
              "params": {"beta": {"default": 0.5, "lo": 0.0, "hi": 1.0},
                         "temperature": {"default": 1.0, "lo": 0.0, "lo_open": True},
                         "stochastic": {"default": True, "kind": "bool"},
                         "keep_prob": {"default": 0.5, "lo": 0.0, "hi": 1.0, "lo_open": True},
                         "drop_rule": {"default": "authors", "kind": "choice", "choices": ["authors", "per_level"],
                                       "doc": "authors: S_i may be empty at every level; per_level: only a single-guide level may drop all"},
                         "min_keep": {"default": None, "kind": "int", "lo": 0, "nullable": True,
                                      "doc": "a fixed floor on the guides kept per batch; null: from drop_rule"},
                         "kl_direction": {"default": "current_guide", "kind": "choice", "choices": ["current_guide", "guide_current"]}}},
}

METHODS = {"cdgkd": CDGKD}
