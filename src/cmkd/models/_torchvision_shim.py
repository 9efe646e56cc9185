"""Make ``import timm`` work when torchvision's compiled operators cannot load.

timm imports torchvision, and torchvision's Python package registers "fake" (meta) kernels for its
compiled operators ``torchvision::nms`` and ``torchvision::qnms`` at import time. When the compiled
library does not match the installed torch (e.g. a CUDA build of torchvision beside a CPU build of
torch), loading it fails quietly, the operators are never defined, and the registration raises
``RuntimeError: operator torchvision::nms does not exist``: torchvision, and with it timm, cannot
be imported at all, although none of the encoders here uses a compiled torchvision operator.

:func:`ensure_timm_importable` repairs exactly that case and nothing else: it first tries the real
import; only when it fails with that error does it remove the half-imported ``torchvision``
modules from ``sys.modules``, define the two operator schemas (schemas only: calling the
operators still fails, as it would have anyway) and import again. When torchvision imports
normally, it does nothing.
"""
from __future__ import annotations

import importlib
import re
import sys

import torch

# The schemas torchvision's _meta_registrations.py expects to exist (torchvision 0.2x).
_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_MISSING_OP = re.compile(r"operator torchvision::(\w+) does not exist")

_LIB = None  # the torch.library.Library holding our definitions; kept alive while the process runs
_STATE: str | None = None  # None (not yet checked), "native" or "shimmed"


def _drop_torchvision_modules() -> None:
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]


def _op_exists(name: str) -> bool:
    return bool(torch._C._jit_get_schemas_for_operator(f"torchvision::{name}"))


def ensure_timm_importable() -> str:
    """Import torchvision (and so make timm importable); return how.

    Returns ``"native"`` when torchvision imported by itself (the shim stayed inactive), or
    ``"shimmed"`` when the missing-operator failure described in the module docstring was
    repaired. Idempotent: later calls return the first answer without doing anything. Any other
    import error propagates unchanged.
    """
    global _LIB, _STATE
    if _STATE is not None:
        return _STATE
    try:
        importlib.import_module("torchvision")
        _STATE = "native"
        return _STATE
    except RuntimeError as err:
        if not _MISSING_OP.search(str(err)):
            raise
        first_error = err
    _drop_torchvision_modules()
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for name, schema in _SCHEMAS.items():
        if not _op_exists(name):
            lib.define(schema)
    _LIB = lib
    try:
        importlib.import_module("torchvision")
    except RuntimeError as err:
        _drop_torchvision_modules()
        raise RuntimeError(
            f"torchvision cannot be imported even with the operator shim ({err}); "
            f"the original error was: {first_error}") from err
    _STATE = "shimmed"
    return _STATE
