"""The process side of a training run: threads, seeds, deterministic algorithms and the device
(:func:`cmkd.devices.resolve_device`), the run's log lines and the interrupt tests' pause point."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cmkd import atomic
from cmkd.devices import resolve_device


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _deterministic_algorithms() -> None:
    """``torch.use_deterministic_algorithms(True)`` without its side import of the inductor
    compiler (``torch._inductor`` and what it pulls in: about 1.1 s per training job here, and
    nothing here compiles). The public function sets the same C++ flag and then an inductor
    option; where the private setter is missing, the public function is called."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:
        torch.use_deterministic_algorithms(True)
    else:
        setter(True)
    assert torch.are_deterministic_algorithms_enabled()


def setup_torch(threads: int, seed: int, device: str) -> torch.device:
    torch.set_num_threads(int(threads))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    dev = resolve_device(device)  # a job given a GPU that torch cannot use stops here (cmkd.devices)
    if dev.type == "cpu":
        _deterministic_algorithms()
    else:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return dev


def pause_point(method: str, epoch: int) -> None:
    """A barrier for the interrupt tests, inert unless ``CMKD_PAUSE_AT`` is set.

    With ``CMKD_PAUSE_AT=<method>:<epoch>:<dir>``, the run of ``<method>`` stops after epoch
    ``<epoch>``, writes its pid to ``<dir>/paused`` and waits until ``<dir>/resume`` exists, so a
    test can interrupt a job at a known point instead of after a guessed delay.
    """
    at = os.environ.get("CMKD_PAUSE_AT")
    if not at:
        return
    m, e, d = at.split(":", 2)
    if m != method or int(e) != epoch:
        return
    d = Path(d)
    atomic.write_text(d / "paused", str(os.getpid()))  # whole or absent: the test reads the pid at once
    while not (d / "resume").exists():
        time.sleep(0.05)
