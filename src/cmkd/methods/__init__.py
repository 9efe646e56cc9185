"""Distillation methods, registered by name.

This table is read by the workflow when it builds the DAG, so it must not import torch: each
entry names the module that defines the method and the roles of the checkpoints the method
needs trained first (a teacher, guides ...). Adding a method is one file in this package plus one
line here and one entry in the config's ``methods``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class MethodInfo:
    module: str
    roles: tuple = ()            # checkpoint roles the method requires (config key ``requires``)
    variadic_roles: bool = False  # True: any number of roles (e.g. densely guided: teacher, ta1, ta2 ...)
    description: str = ""
    trivial: bool = False         # a trivial baseline: fitted on the training labels alone, no network


REGISTRY: dict[str, MethodInfo] = {
    # trivial baselines (cmkd.methods.trivial): the floor of every table
    "majority": MethodInfo("cmkd.methods.trivial", (), False, "majority class of the training part / training mean", True),
    "stratified": MethodInfo("cmkd.methods.trivial", (), False, "draws from the training label distribution (seeded)", True),
    "baseline": MethodInfo("cmkd.methods.baseline", (), False, "student alone, cross-entropy, no distillation"),
    "fusion_teacher": MethodInfo("cmkd.methods.baseline", (), False, "multimodal network, concatenation fusion + cross-entropy"),
    "kd": MethodInfo("cmkd.methods.kd", ("teacher",), False, "Hinton et al. 2015 knowledge distillation (TAKD: a chain of kd runs)"),
    # the classic KD zoo (feature-based and relational)
    "fitnets": MethodInfo("cmkd.methods.fitnets", ("teacher",), False, "Romero et al. 2015 hints"),
    "nst": MethodInfo("cmkd.methods.nst", ("teacher",), False, "Huang & Wang 2017 neuron selectivity transfer"),
    "sp": MethodInfo("cmkd.methods.sp", ("teacher",), False, "Tung & Mori 2019 similarity-preserving KD"),
    "rkd": MethodInfo("cmkd.methods.rkd", ("teacher",), False, "Park et al. 2019 relational KD"),
    "pkt": MethodInfo("cmkd.methods.pkt", ("teacher",), False, "Passalis & Tefas 2018 probabilistic KT"),
    "crd": MethodInfo("cmkd.methods.crd", ("teacher",), False, "Tian et al. 2020 contrastive representation distillation"),
    "dgkd": MethodInfo("cmkd.methods.dgkd", (), True, "Son et al. 2021 densely guided KD (guides: teacher + TAs)"),
    # CDGKD (seed 001) and its baselines
    "proto_teacher": MethodInfo("cmkd.methods.proto_teacher", (), False, "CDGKD prototype-based modality rebalancing teacher (eq. 1-6)"),
    "cdgkd": MethodInfo("cmkd.methods.cdgkd", (), True, "CDGKD cross-modal densely guided KD (eq. 7-9)"),
    "emotionkd": MethodInfo("cmkd.methods.emotionkd", ("teacher",), False, "EmotionKD (Liu et al. 2023) student"),
    "ambokd": MethodInfo("cmkd.methods.ambokd", (), False, "AMBOKD (Li et al. 2024) adaptive modality-balanced online KD"),
    "cnn_svm": MethodInfo("cmkd.methods.teacher_baselines", (), False, "CNN+SVM decision-level fusion teacher"),
    "cnn_lstm": MethodInfo("cmkd.methods.teacher_baselines", (), False, "CNN+LSTM fusion teacher"),
    "dgc_jca": MethodInfo("cmkd.methods.teacher_baselines", (), False, "DGC+JCA dense graph conv + joint cross-attention teacher"),
    "emotionkd_teacher": MethodInfo("cmkd.methods.teacher_baselines", (), False, "EmotionKD multimodal teacher"),
    # MKD with dynamic feedback (seeds 002/004)
    "mkd_teacher": MethodInfo("cmkd.methods.mkd_feedback", (), False, "MKD dual-stream EEG+EOG teacher with IMF fusion"),
    "mkd_student": MethodInfo("cmkd.methods.mkd_feedback", ("teacher",), False, "MKD EOG student with HDF, optional dynamic feedback"),
    # CMCRD (seed 003) and uncertainty-aware prototype KD (seed 000)
    "cmcrd_teacher": MethodInfo("cmkd.methods.cmcrd", (), False, "CMCRD teacher with minimal class confusion"),
    "cmcrd": MethodInfo("cmkd.methods.cmcrd", ("teacher",), False, "CMCRD cross-modal contrastive representation distillation"),
    "uaproto": MethodInfo("cmkd.methods.uaproto", ("teacher",), False, "uncertainty-aware cross-modal prototype KD"),
}


def method_class(name: str):
    """Import and return the class registered as ``name``."""
    info = REGISTRY[name]
    mod = importlib.import_module(info.module)
    cls = getattr(mod, "METHODS", {}).get(name)
    if cls is None:
        raise KeyError(f"module {info.module} defines no method '{name}' in its METHODS table")
    return cls
