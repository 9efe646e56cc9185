"""The bad-input catalogue through the real `snakemake -n` path: a representative subset of
tests/test_bad_input.py's inputs, at least one per kind of check (schema, semantics, encoders and
architectures, face size vs architecture, splits on the data's shape, class balance after
thresholding, device vs the torch build, raw data roots and parameters, prepared data), each
stopped by the dry-run with a non-zero exit, no Python traceback, and the culprit named in the
first line after Snakemake's own banner lines.

Each dry-run is a subprocess of its own; they run a few at a time in one test (the fixtures
written once), so the whole catalogue costs about as much as a handful of sequential dry-runs.
"""
from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import yaml

from conftest import ROOT, SNAKEMAKE
from test_bad_input import CONFIG_CASES, TRACE, _full_dir, _real

#: one or more per kind of check (names of test_bad_input.CONFIG_CASES)
CASES = [
    # schema
    "top_level_typo", "dataset_key_typo", "training_typo", "resources_typo", "table_metric_typo",
    # semantics
    "loader_unknown", "modality_unknown", "synthetic_param_typo", "zero_segments", "tie_middle",
    "n_classes_three", "dimension_target_typo", "table_row_unknown", "requires_unknown",
    # encoders, architectures, face size vs architecture
    "encoder_name_typo", "encoder_key_typo", "method_encoder_typo", "architecture_unknown",
    "face_too_small_for_arch", "face_not_a_patch_multiple", "img_size_too_small_for_pvt",
    # splits on the data's shape, class balance after thresholding
    "ratios_sum", "more_folds_than_trials", "loso_one_subject", "method_split_kind", "threshold_one_class",
    # raw data
    "root_missing", "root_empty", "real_param_typo", "not_recorded",
]

#: Snakemake's own lines before the project's error
BANNER = ("Config file ", "WorkflowError", "Building DAG", "Assuming unrestricted", "host:", "Using shell",
          "Provided cores", "Rules claiming", "Select jobs")


def _prepared_one_class(tmp):
    """A prepared DEAP folder whose arousal ratings are all high: only its meta.json tells."""
    prep = tmp / "results" / "prepared" / "deap"
    prep.mkdir(parents=True)
    n = 60
    arrays = {"subject": np.repeat(np.arange(5), 12), "trial": np.tile(np.repeat(np.arange(4), 3), 5),
              "arousal": np.full(n, 7.0, np.float32), "valence": np.linspace(1, 9, n).astype(np.float32)}
    for k, v in arrays.items():
        np.save(prep / f"{k}.npy", v)
    (prep / "meta.json").write_text(json.dumps({
        "dataset": "deap", "n_segments": n, "content_hash": "test",
        "arrays": {k: {"shape": list(v.shape), "dtype": v.dtype.str} for k, v in arrays.items()}}))
    return _real(tmp, _full_dir(tmp))


#: inputs of their own: (name, overlay or function of a folder -> overlay, text of the first line)
EXTRA = [
    ("device_cuda_on_cpu_torch", {"device": "cuda"}, "device: 'cuda' asked for, but the installed torch is a CPU-only build"),
    ("prepared_one_class", _prepared_one_class, "dimensions.arousal.threshold"),
]


def first_line(out: str) -> str:
    """The first line of the output that is not Snakemake's own banner."""
    return next((ln for ln in out.splitlines() if ln.strip() and not ln.startswith(BANNER)), "")


def _dry_run(name, overlay, tmp):
    tmp.mkdir(parents=True)
    if callable(overlay):
        overlay = overlay(tmp)
    ov = tmp / "overlay.yaml"
    ov.write_text(yaml.safe_dump({"results": str(tmp / "results"), **overlay}, sort_keys=False))
    r = subprocess.run([SNAKEMAKE, "-n", "--cores", "1", "--configfile", str(ov)], capture_output=True, text=True,
                       cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src")), timeout=300)
    return r.returncode, r.stdout + r.stderr


def test_the_catalogue_is_stopped_by_the_dry_run(tmp_path):
    from cmkd.devices import torch_build

    cases = {c[0]: c for c in CONFIG_CASES}
    todo = [cases[n] for n in CASES] + [c for c in EXTRA if c[0] != "device_cuda_on_cpu_torch"
                                        or torch_build()["kind"] == "cpu"]
    assert len(todo) >= 25
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: _dry_run(c[0], c[1], tmp_path / c[0]), todo))
    failures = []
    for (name, _, expect), (rc, out) in zip(todo, results):
        first = first_line(out)
        if rc == 0 or TRACE in out or "Job stats" in out or not first.startswith("invalid config:") or expect not in first:
            failures.append(f"{name} (exit {rc}; expected {expect!r} in the first line):\n{out[-1500:]}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("out,first", [
    ("Config file config.yaml is extended by additional config specified via the command line.\n"
     "WorkflowError in file \"x/common.smk\", line 26:\ninvalid config: split.ratios: sum to 1.1\n", "invalid config: split.ratios: sum to 1.1"),
    ("Building DAG of jobs...\nJob stats:\n", "Job stats:"),
])
def test_first_line_skips_the_banner(out, first):
    assert first_line(out) == first
