"""Measure the square frame sizes each timm architecture accepts, as the job builds it
(cmkd.models.visual.TimmFrameEncoder: img_size passed to models that take one, one forward
pass at build time). Prints ``(smallest, multiple)`` per architecture, the table that src/cmkd/models/visual_sizes.py declares:

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/visual_min_sizes.py [arch ...]
"""
from __future__ import annotations

import math
import sys

import torch

from cmkd.models.visual import TimmFrameEncoder

ARCHS = ["test_vit", "test_convnext3", "pvt_v2_b0", "resnet18", "resnet50", "convnext_tiny",
         "efficientnet_b0", "vit_tiny_patch16_224"]


def accepts(arch: str, size: int) -> bool:
    try:
        TimmFrameEncoder(arch, size)
        return True
    except ValueError:
        return False


def rule(arch: str, hi: int = 80) -> tuple[int, int]:
    """``(smallest, multiple)``: the sizes 1..``hi`` accepted are exactly ``smallest``,
    ``smallest + multiple``, ... (checked; a model whose accepted sizes follow no such rule stops)."""
    ok = [s for s in range(1, hi + 1) if accepts(arch, s)]
    if not ok:
        raise SystemExit(f"{arch}: no size up to {hi} accepted")
    step = math.gcd(*[b - ok[0] for b in ok[1:]]) or 1
    if ok != list(range(ok[0], hi + 1, step)):
        raise SystemExit(f"{arch}: accepted sizes {ok} follow no (smallest, multiple) rule")
    return ok[0], step


if __name__ == "__main__":
    torch.set_num_threads(1)
    for arch in sys.argv[1:] or ARCHS:
        lo, step = rule(arch)
        print(f'    "{arch}": ({lo}, {step}),', flush=True)
