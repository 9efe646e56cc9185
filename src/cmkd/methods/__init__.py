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


REGISTRY: dict[str, MethodInfo] = {
    "baseline": MethodInfo("cmkd.methods.baseline", (), False, "student alone, cross-entropy, no distillation"),
    "fusion_teacher": MethodInfo("cmkd.methods.baseline", (), False, "multimodal network, concatenation fusion + cross-entropy"),
    "kd": MethodInfo("cmkd.methods.kd", ("teacher",), False, "Hinton et al. 2015 knowledge distillation"),
}


def method_class(name: str):
    """Import and return the class registered as ``name``."""
    info = REGISTRY[name]
    mod = importlib.import_module(info.module)
    cls = getattr(mod, "METHODS", {}).get(name)
    if cls is None:
        raise KeyError(f"module {info.module} defines no method '{name}' in its METHODS table")
    return cls
