"""Every split kind, declared once: name, family, folds or not, parameters, doc line.

``split.kind`` (the top-level ``split``, a data set's, a track's or a method's ``split``) names one
of :data:`SPLIT_KINDS`. The schema's ``split`` section (:func:`schema`, merged into
config/schema.yaml by :mod:`cmkd.validation`), the config check (:mod:`cmkd.config`,
:mod:`cmkd.feasibility`), the splits themselves (:mod:`cmkd.data.splits`,
:mod:`cmkd.data.protocols`) and the listing (``python -m cmkd list splits``) read this table.
Adding a split kind is one :func:`register` call (or one entry below) plus its implementation.

Families: ``trial`` (every segment of a trial in one part), ``subject`` (every segment of a subject
in one part), ``leaky`` (segments assigned one by one: the leakage study), ``protocol`` (the SEED
family's official subject-dependent protocols; they need a data set of the loader family named
by ``loader_family``). A protocol's ``models`` parameter chooses one pooled model over all
subjects (``pooled``, the default) or one model per subject (``per_subject``, the papers' report):
:func:`fold_run` makes the latter a fold run whose folds are the subjects.

A parameter is a :class:`cmkd.params.Param`; one name means one thing in every kind (one
:class:`Param` object, shared). :data:`COMMON` parameters apply to every kind. Defaults come from
the declarations: :func:`settings` fills a merged split section with its kind's defaults. The
schema writes the defaults of :data:`SCHEMA_FILLED` into the top-level ``split`` (as it always
has: the run's config hash covers them); the others are filled when a split is made.

Torch- and numpy-free: read when the workflow builds its DAG.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping

from cmkd.errors import ConfigError, RegistryError
from cmkd.params import Param, json_schema

FAMILIES = ("trial", "subject", "leaky", "protocol")


@dataclass(frozen=True)
class SplitKind:
    name: str
    family: str                      # one of FAMILIES
    folds: bool                      # several folds per seed (one model per fold)
    params: dict = field(default_factory=dict)  # {name: Param} of this kind (COMMON ones aside)
    doc: str = ""
    per_subject: bool = False        # validation drawn per subject; results reported per subject
    loader_family: str | None = None  # the loader family whose data sets it needs (None: any)
    make: str | None = None          # "module:function" making the split; None: cmkd.data.splits itself
    paper: str = ""                  # where the protocol comes from


# ------------------------------------------------------------------------------ parameters
STRATIFY = Param(True, "bool", doc="stratify the assignment by class (classification)")
FEEDBACK_FRACTION = Param(None, "number", lo=0.0, hi=1.0, lo_open=True, hi_open=True, nullable=True,
                          doc="share of the validation trials held out of model selection for a method that trains "
                              "on validation data (MKD's feedback phase); null = none (cmkd.data.selection)")
RATIOS = Param([0.8, 0.1, 0.1], "any", doc="(train, validation, test) shares of the groups, summing to 1")
N_FOLDS = Param(5, "int", lo=2, doc="number of folds (every trial tested once per seed)")
FOLDS_BY = Param("pooled", "choice", choices=("pooled", "subject", "segment"),
                 doc="deal the trials into folds over all trials (pooled) or within each subject; segment: single "
                     "segments (the leaky segment-level k-fold of the leakage study)")
VAL_FRACTION = Param(0.1, "number", lo=0.0, hi=1.0, lo_open=True, hi_open=True,
                     doc="fraction of each fold's training trials carved out (by trial, stratified by class) for "
                         "validation")
TRAIN_TRIALS = Param(None, "int", lo=1, doc="clips per session that train (SEED 9, SEED-IV 16, SEED-V 10); required")
VAL_TRIALS = Param(1, "int", lo=1, doc="validation clips of every class per subject, drawn with the seed from its "
                                       "training clips across its training sessions")
TEST_SESSION = Param(3, "int", lo=1, doc="the session that tests")
MODELS = Param("pooled", "choice", choices=("pooled", "per_subject"),
               doc="pooled: one model trained on every subject's training clips and tested on all test clips; "
                   "per_subject: one model per subject (its own training, validation and test clips), the run's "
                   "metrics the mean over subjects (the SEED-family papers' report; a fold run whose folds are the "
                   "subjects, cmkd.crossval)")

#: parameters of every kind
COMMON = {"stratify": STRATIFY, "feedback_fraction": FEEDBACK_FRACTION}
#: parameters whose defaults the schema writes into the top-level ``split``
SCHEMA_FILLED = ("n_folds", "folds_by", "val_fraction", "stratify")
#: JSON schema of the parameters a :class:`Param` cannot describe (lists)
SCHEMA_OVERRIDES = {"ratios": {"type": "array", "minItems": 3, "maxItems": 3,
                               "items": {"type": "number", "exclusiveMinimum": 0}}}

SPLIT_KINDS: dict[str, SplitKind] = {}


def register(kind: SplitKind) -> SplitKind:
    """Add ``kind`` to :data:`SPLIT_KINDS`; a parameter name already declared elsewhere must be the
    same :class:`Param` (one name, one meaning)."""
    if kind.family not in FAMILIES:
        raise RegistryError(f"split kind '{kind.name}': family must be one of {list(FAMILIES)}, got {kind.family!r}")
    known = all_params()
    for p, decl in kind.params.items():
        if not isinstance(decl, Param):
            raise RegistryError(f"split kind '{kind.name}': parameter '{p}' must be a Param, got {decl!r}")
        if p in known and known[p] != decl:
            raise RegistryError(f"split kind '{kind.name}': parameter '{p}' is declared differently by another kind")
    SPLIT_KINDS[kind.name] = kind
    return kind




# ------------------------------------------------------------------------------ views
def kinds(folds: bool | None = None, family: str | None = None) -> tuple[str, ...]:
    """Names of the registered kinds, in registration order (only fold kinds with ``folds=True``,
    only single splits with ``folds=False``; only ``family`` where given)."""
    return tuple(k.name for k in SPLIT_KINDS.values()
                 if (folds is None or k.folds == folds) and (family is None or k.family == family))


def per_subject_kinds() -> tuple[str, ...]:
    return tuple(k.name for k in SPLIT_KINDS.values() if k.per_subject)


def all_params() -> dict[str, Param]:
    """Every split parameter of every kind (plus :data:`COMMON`), by name."""
    out = dict(COMMON)
    for k in SPLIT_KINDS.values():
        out.update(k.params)
    return out


def split_keys() -> tuple[str, ...]:
    """The keys a ``split`` section accepts: ``kind`` and every parameter of any kind."""
    return ("kind", *all_params())


for _k in (
    SplitKind("trial", "trial", False, {"ratios": RATIOS},
              "one trial-level split per seed: every segment of a (subject, trial) in one part (the protocol)"),
    SplitKind("subject", "subject", False, {"ratios": RATIOS},
              "one subject-level split per seed: subject-independent, every subject in one part"),
    SplitKind("leaky", "leaky", False, {"ratios": RATIOS},
              "one segment-level split per seed: segments of one trial land in several parts (the leakage study only)"),
    SplitKind("kfold", "trial", True, {"n_folds": N_FOLDS, "folds_by": FOLDS_BY, "val_fraction": VAL_FRACTION},
              "k-fold cross-validation over trials: every trial tested once per seed, one model per fold"),
    SplitKind("loso", "subject", True, {"val_fraction": VAL_FRACTION},
              "leave one subject out: every subject tested once per seed, unseen in training"),
    SplitKind("chronological", "protocol", False,
              {"train_trials": TRAIN_TRIALS, "val_trials": VAL_TRIALS, "models": MODELS},
              "per subject and session, the first train_trials clips train and the rest test (the SEED family's "
              "official subject-dependent split)", per_subject=True, loader_family="seed",
              make="cmkd.data.protocols:protocol_split", paper="Zheng & Lu 2015 (SEED); Zheng et al. 2019 (SEED-IV)"),
    SplitKind("cross_session", "protocol", False,
              {"test_session": TEST_SESSION, "val_trials": VAL_TRIALS, "models": MODELS},
              "every subject's test_session tests and its other sessions train", per_subject=True,
              loader_family="seed", make="cmkd.data.protocols:protocol_split",
              paper="Zheng et al. 2019 (SEED-IV cross-session)"),
):
    register(_k)
del _k


def get(kind: str, where: str = "split.kind") -> SplitKind:
    if kind not in SPLIT_KINDS:
        raise ConfigError(f"{where}: unknown split kind {kind!r} (known: {', '.join(SPLIT_KINDS)})")
    return SPLIT_KINDS[kind]


def settings(split: Mapping[str, Any] | None, where: str = "split") -> dict:
    """A merged split section with its kind's declared defaults (``kind`` ``trial`` when absent) filled
    in for the keys it does not set; values that are set are kept as they are."""
    sp = dict(split or {})
    kind = get(sp.get("kind", "trial"), f"{where}.kind")
    out = {"kind": kind.name}
    for name, decl in {**COMMON, **kind.params}.items():
        out[name] = copy.deepcopy(decl.default)
    out.update(sp)
    return out


def per_subject_models(split: Mapping[str, Any] | None) -> bool:
    """A split (as configured, its kind ``trial`` when absent) trains one model per subject: a kind
    that declares ``models`` with ``models: per_subject`` (the key is ignored by the other kinds)."""
    sp = settings(split)
    return "models" in get(sp["kind"]).params and sp["models"] == "per_subject"


def fold_run(split: Mapping[str, Any] | None) -> bool:
    """A run of this split trains several models per seed, pooled afterwards (:mod:`cmkd.crossval`):
    a fold kind (k-fold, LOSO), or a protocol with one model per subject (its folds are the subjects)."""
    return get(settings(split)["kind"]).folds or per_subject_models(split)


def models_per_run(split: Mapping[str, Any] | None, n_subjects: int) -> int:
    """How many models one run (one seed) of ``split`` trains on a data set of ``n_subjects``
    subjects: ``n_folds`` for k-fold, one per subject for LOSO and per-subject models, else one."""
    sp = settings(split)
    kind = get(sp["kind"])
    if kind.folds:
        return int(sp["n_folds"]) if "n_folds" in kind.params else max(1, int(n_subjects))
    return max(1, int(n_subjects)) if per_subject_models(sp) else 1


def check_section(part: Mapping[str, Any] | None, where: str) -> None:
    """A ``split`` section of a data set, track or method: known keys, a known kind, and the values
    its declarations check (:class:`ConfigError` naming ``{where}.{key}``); ``models: per_subject``
    beside a kind that does not declare ``models``."""
    params = all_params()
    for k, v in (part or {}).items():
        if k == "kind":
            if v not in SPLIT_KINDS:
                raise ConfigError(f"{where}.kind: unknown split kind {v!r} (known: {', '.join(SPLIT_KINDS)})")
        elif k not in params:
            raise ConfigError(f"{where}.{k}: unknown split key (known: {', '.join(split_keys())})")
        else:
            params[k].check(v, f"{where}.{k}")
    kind = SPLIT_KINDS.get((part or {}).get("kind"))
    if kind is not None and (part or {}).get("models", "pooled") != "pooled" and "models" not in kind.params:
        users = [k.name for k in SPLIT_KINDS.values() if "models" in k.params]
        raise ConfigError(f"{where}.models: {part['models']!r} needs a kind that trains per-subject models "
                          f"({', '.join(users)}); kind '{kind.name}' does not declare it")


def schema() -> dict:
    """The JSON schema of the top-level ``split`` section, from the declarations."""
    props: dict = {"kind": {"type": "string", "enum": list(SPLIT_KINDS),
                            "description": "; ".join(f"{k.name}: {k.doc}" for k in SPLIT_KINDS.values())}}
    users: dict[str, list[str]] = {}
    for k in SPLIT_KINDS.values():
        for p in k.params:
            users.setdefault(p, []).append(k.name)
    for name, decl in all_params().items():
        s = copy.deepcopy(SCHEMA_OVERRIDES.get(name)) or json_schema(decl, default=False)
        if name in SCHEMA_FILLED:
            s["default"] = copy.deepcopy(decl.default)
        who = ", ".join(users.get(name, [])) or "every kind"
        s["description"] = f"{who}: {decl.doc}" if decl.doc else who
        props[name] = s
    return {"type": "object", "additionalProperties": False, "required": ["kind", "ratios"], "properties": props}
