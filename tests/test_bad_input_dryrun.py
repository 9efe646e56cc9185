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

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from conftest import ROOT, SNAKEMAKE
from bad_inputs import CONFIG_CASES, DRYRUN_EXTRA, TRACE, applies, first_line

#: one or more per kind of check (names of bad_inputs.CONFIG_CASES)
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
    cases = {c[0]: c for c in CONFIG_CASES}
    todo = [cases[n] for n in CASES] + [c for c in DRYRUN_EXTRA if applies(c[0])]
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
