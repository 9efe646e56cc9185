"""Distillation methods, registered by name.

This table is read by the workflow when it builds the DAG, so it must not import torch: each
entry names the module that defines the method and the roles of the checkpoints the method
needs trained first (a teacher, guides ...), and the parameters it accepts (name, kind, default,
allowed values): :func:`cmkd.config.check_config` checks ``methods.<key>.params`` against them before
any job runs, and :class:`cmkd.methods.base.Method` resolves its parameters from them (the single
source of the defaults). Adding a method is one file in this package plus one entry here and one
entry in the config's ``methods`` (see docs/contracts.md).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from cmkd.params import Param, resolve


@dataclass(frozen=True)
class MethodInfo:
    module: str
    roles: tuple = ()            # checkpoint roles the method requires (config key ``requires``)
    variadic_roles: bool = False  # True: any number of roles (e.g. densely guided: teacher, ta1, ta2 ...)
    description: str = ""
    params: dict = field(default_factory=dict)  # {name: Param}: accepted parameters and their defaults
    trivial: bool = False         # a trivial baseline: fitted on the training labels alone, no network


def _num(default, lo=None, hi=None, lo_open=False, hi_open=False, doc=""):
    return Param(default, "number", lo, hi, lo_open, hi_open, doc=doc)


def _int(default, lo=None, hi=None):
    return Param(default, "int", lo, hi)


def _bool(default):
    return Param(default, "bool")


def _choice(default, *choices):
    return Param(default, "choice", choices=tuple(choices))


def _feature(default, nullable=False):
    return Param(default, "str", nullable=nullable)


_POS = dict(lo=0.0, lo_open=True)  # > 0
_TEMPERATURE = _num(4.0, **_POS)
# RepDistiller's objective gamma * CE + alpha * KD + beta * L_feature (cmkd.methods.zoo_common)
_ZOO = {"gamma": _num(1.0, lo=0.0), "alpha": _num(0.0, lo=0.0), "temperature": _TEMPERATURE}
_TEACHER_FEATURE = {"teacher_feature": _feature(None, nullable=True)}
_CRD = {**_ZOO, "beta": _num(0.8, lo=0.0), "feat_dim": _int(128, lo=1), "nce_k": _int(4096, lo=1),
        "nce_t": _num(0.07, **_POS), "nce_m": _num(0.5, lo=0.0, hi=1.0),
        "feature": _feature("embedding"), **_TEACHER_FEATURE,
        # negatives from other classes (RepDistiller's training path, CMCRD) for classification; uniform for regression
        "negatives": _choice("auto", "auto", "class", "uniform")}


REGISTRY: dict[str, MethodInfo] = {
    # trivial baselines (cmkd.methods.trivial): the floor of every table
    "majority": MethodInfo("cmkd.methods.trivial", (), False, "majority class of the training part / training mean", trivial=True),
    "stratified": MethodInfo("cmkd.methods.trivial", (), False, "draws from the training label distribution (seeded)", trivial=True),
    "baseline": MethodInfo("cmkd.methods.baseline", (), False, "student alone, cross-entropy, no distillation"),
    "fusion_teacher": MethodInfo("cmkd.methods.baseline", (), False, "multimodal network, concatenation fusion + cross-entropy"),
    "kd": MethodInfo("cmkd.methods.kd", ("teacher",), False, "Hinton et al. 2015 knowledge distillation (TAKD: a chain of kd runs)",
                      {"alpha": _num(0.5, 0.0, 1.0), "temperature": _TEMPERATURE}),
    # the classic KD zoo (feature-based and relational)
    "fitnets": MethodInfo("cmkd.methods.fitnets", ("teacher",), False, "Romero et al. 2015 hints",
                           {**_ZOO, "beta": _num(100.0, lo=0.0), "feature": _choice("hint", "hint", "embedding"), **_TEACHER_FEATURE}),
    "nst": MethodInfo("cmkd.methods.nst", ("teacher",), False, "Huang & Wang 2017 neuron selectivity transfer",
                       {**_ZOO, "beta": _num(50.0, lo=0.0), "feature": _feature("hint"), **_TEACHER_FEATURE}),
    "sp": MethodInfo("cmkd.methods.sp", ("teacher",), False, "Tung & Mori 2019 similarity-preserving KD",
                      {**_ZOO, "beta": _num(3000.0, lo=0.0), "feature": _choice("embedding", "embedding", "hint"), **_TEACHER_FEATURE}),
    "rkd": MethodInfo("cmkd.methods.rkd", ("teacher",), False, "Park et al. 2019 relational KD",
                       {**_ZOO, "beta": _num(1.0, lo=0.0), "w_d": _num(25.0, lo=0.0), "w_a": _num(50.0, lo=0.0),
                        "feature": _choice("embedding", "embedding", "hint"), **_TEACHER_FEATURE}),
    "pkt": MethodInfo("cmkd.methods.pkt", ("teacher",), False, "Passalis & Tefas 2018 probabilistic KT",
                       {**_ZOO, "beta": _num(30000.0, lo=0.0), "feature": _choice("embedding", "embedding", "hint"), **_TEACHER_FEATURE}),
    "crd": MethodInfo("cmkd.methods.crd", ("teacher",), False, "Tian et al. 2020 contrastive representation distillation", _CRD),
    "dgkd": MethodInfo("cmkd.methods.dgkd", (), True, "Son et al. 2021 densely guided KD (guides: teacher + TAs)",
                        {"alpha": _num(0.5, 0.0, 1.0), "temperature": _TEMPERATURE, "drop_rate": _num(0.5, 0.0, 1.0),
                         "min_keep": _int(1, lo=0)}),
    # CDGKD (seed 001) and its baselines
    "proto_teacher": MethodInfo("cmkd.methods.proto_teacher", (), False, "CDGKD prototype-based modality rebalancing teacher (eq. 1-6)",
                                 {"alpha": _num(0.5, 0.0, 1.0), "prototype_update": _choice("epoch", "epoch", "ema"),
                                  "momentum": _num(0.9, 0.0, 1.0, hi_open=True), "visual": _feature("face"),
                                  "eeg": _feature("eeg"), "eval_batch_size": _int(256, lo=1)}),
    "cdgkd": MethodInfo("cmkd.methods.cdgkd", (), True, "CDGKD cross-modal densely guided KD (eq. 7-9)",
                         {"beta": _num(0.5, 0.0, 1.0), "temperature": _num(1.0, **_POS), "stochastic": _bool(True),
                          "keep_prob": _num(0.5, 0.0, 1.0, lo_open=True), "min_keep": _int(1, lo=0),
                          "kl_direction": _choice("current_guide", "current_guide", "guide_current")}),
    "emotionkd": MethodInfo("cmkd.methods.emotionkd", ("teacher",), False, "EmotionKD (Liu et al. 2023) student",
                             {"e1": _num(1.0, lo=0.0), "e2": _num(0.1, lo=0.0), "e3": _num(1.0, lo=0.0),
                              "temperature": _num(1.0, **_POS), "feedback": _bool(True), "feedback_every": _int(5, lo=1),
                              "feedback_steps": _int(1, lo=1), "teacher_lr": _num(1.0e-4, **_POS), "lambda_t": _num(1.0, lo=0.0),
                              "temp_lr": Param(None, "number", 0.0, lo_open=True, nullable=True),
                              "feedback_fraction": _num(0.5, 0.0, 1.0, lo_open=True, hi_open=True)}),
    "ambokd": MethodInfo("cmkd.methods.ambokd", (), False, "AMBOKD (Li et al. 2024) adaptive modality-balanced online KD",
                          {"lambda_kd": _num(1.0, lo=0.0), "temperature": _num(3.0, **_POS),
                           "balance_gamma": _num(0.5, lo=0.0), "balance": _bool(True)}),
    "cnn_svm": MethodInfo("cmkd.methods.teacher_baselines", (), False, "CNN+SVM decision-level fusion teacher",
                           {"svm_l2": _num(1.0e-3, lo=0.0)}),
    "cnn_lstm": MethodInfo("cmkd.methods.teacher_baselines", (), False, "CNN+LSTM fusion teacher"),
    "dgc_jca": MethodInfo("cmkd.methods.teacher_baselines", (), False, "DGC+JCA dense graph conv + joint cross-attention teacher"),
    "emotionkd_teacher": MethodInfo("cmkd.methods.teacher_baselines", (), False, "EmotionKD multimodal teacher"),
    # MKD with dynamic feedback (seeds 002/004)
    "mkd_teacher": MethodInfo("cmkd.methods.mkd_feedback", (), False, "MKD dual-stream EEG+EOG teacher with IMF fusion"),
    "mkd_student": MethodInfo("cmkd.methods.mkd_feedback", ("teacher",), False, "MKD EOG student with HDF, optional dynamic feedback",
                               {"lambda1": _num(1.0, lo=0.0), "lambda2": _num(1.0, lo=0.0), "lambda3": _num(1.0, lo=0.0),
                                "temperature": _num(1.0, **_POS), "feedback": _bool(True), "feedback_every": _int(5, lo=1),
                                "feedback_steps": _int(1, lo=1), "teacher_lr": _num(1.0e-4, **_POS), "lambda_t": _num(1.0, lo=0.0),
                                "temp_lr": Param(None, "number", 0.0, lo_open=True, nullable=True),
                                "feedback_fraction": _num(0.5, 0.0, 1.0, lo_open=True, hi_open=True),
                                "hetero_source": _feature("student"), "feature_target": _choice("imf", "imf", "hetero")}),
    # CMCRD (seed 003) and uncertainty-aware prototype KD (seed 000)
    "cmcrd_teacher": MethodInfo("cmkd.methods.cmcrd", (), False, "CMCRD teacher with minimal class confusion",
                                 {"mu": _num(1.0, lo=0.0), "temperature": _num(2.5, **_POS)}),
    "cmcrd": MethodInfo("cmkd.methods.cmcrd", ("teacher",), False, "CMCRD cross-modal contrastive representation distillation",
                         {**_CRD, "weighting": _choice("teacher", "teacher", "student", "none")}),
    "uaproto": MethodInfo("cmkd.methods.uaproto", ("teacher",), False, "uncertainty-aware cross-modal prototype KD",
                           {"lambda_proto": _num(1.0, lo=0.0), "lambda_feat": _num(1.0, lo=0.0), "lambda_head": _num(1.0, lo=0.0),
                            "tau": _num(0.1, **_POS), "tau_u": _num(0.5, **_POS), "temperature": _TEMPERATURE,
                            "n_bins": _int(2, lo=2), "uncertainty": _bool(True),
                            "weight": _choice("confidence", "confidence", "evidence"),
                            "bin_threshold": Param(None, "number", 1.0, nullable=True),
                            "bin_tie": Param(None, "choice", choices=("low", "high"), nullable=True)}),
}


def method_class(name: str):
    """Import and return the class registered as ``name``."""
    info = REGISTRY[name]
    mod = importlib.import_module(info.module)
    cls = getattr(mod, "METHODS", {}).get(name)
    if cls is None:
        raise KeyError(f"module {info.module} defines no method '{name}' in its METHODS table")
    return cls


def method_params(name: str, params: dict | None, where: str) -> dict:
    """The parameters of a method of registered class ``name``: the registry's defaults updated
    with ``params``; an unknown or ill-typed one raises ConfigError naming ``{where}.<p>``
    (``where`` is the config key, e.g. ``methods.kd.params``)."""
    return resolve(params, REGISTRY[name].params, where)


def registered_name(cls) -> str | None:
    """The registry name of a method class (or of its nearest registered base class); None if
    neither it nor a base is registered."""
    for c in cls.__mro__:
        for name, info in REGISTRY.items():
            if info.module == c.__module__:
                mod = importlib.import_module(info.module)
                if getattr(mod, "METHODS", {}).get(name) is c:
                    return name
    return None
