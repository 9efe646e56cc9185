"""Mixed precision of a training job: ``training.autocast`` (``off``, ``bf16``, ``fp16``).

On a CUDA device, ``bf16``/``fp16`` run the forward passes (training steps and evaluation) under
``torch.autocast`` with that dtype; ``fp16`` also scales the loss (``torch.amp.GradScaler``) so
that small gradients do not underflow, and skips an optimiser step whose gradients overflowed (as
the scaler does). The backward pass and the optimiser run outside autocast, as PyTorch
recommends. Every loss the methods compute from autocast outputs is taken as is: losses that need
float32 (softmax, log, exp) are autocast to float32 by PyTorch's op lists.

On the CPU the key is accepted and has no effect (``effective`` is ``off``): CPU autocast in bf16
is slower than float32 on most CPUs and would change the default's numbers. The requested and the
effective setting are both written to the run's provenance.
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch

from cmkd.errors import ConfigError

CHOICES = ("off", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_autocast(value: Any) -> str:
    """Validate ``training.autocast``; return it (``None`` means ``off``)."""
    if value is None or value is False:
        return "off"
    if value not in CHOICES:
        raise ConfigError(f"training.autocast: must be one of {list(CHOICES)}, got {value!r}")
    return value


class Amp:
    """``autocast()`` context, ``backward(loss)`` and ``step(optimizer)`` for one training job."""

    def __init__(self, requested: Any, device: torch.device | str):
        self.requested = check_autocast(requested)
        self.device = torch.device(device)
        self.effective = self.requested if self.device.type == "cuda" else "off"
        if self.effective == "bf16" and not torch.cuda.is_bf16_supported():
            raise ConfigError("training.autocast: 'bf16' requested but this GPU does not support bfloat16; use 'fp16'")
        self.dtype = _DTYPES.get(self.effective)
        self.scaler = torch.amp.GradScaler("cuda") if self.effective == "fp16" else None

    @property
    def info(self) -> dict:
        return {"autocast_requested": self.requested, "autocast": self.effective}

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
