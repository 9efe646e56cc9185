"""The CPU pieces of the paper-scale rehearsal and the GPU check (bench --scale paper, scripts/gpu_check.sh)."""
import numpy as np

from cmkd import bench_scale as b
from cmkd.data.prepared import load_prepared

TINY = {"n_subjects": 2, "n_trials": 4, "segments_per_trial": 3, "sampling_rate": 128, "face_size": 16,
        "face_frames": 1}


def test_deap_sized_writer_repeats_rendered_faces(tmp_path):
    prep = load_prepared(b.write_deap_sized(tmp_path / "d", TINY, face_segments=5, log=lambda *a: None))
    assert prep.n == 24 and prep.meta["bench_face_segments_rendered"] == 5
    face = np.asarray(prep["face"])
    assert np.array_equal(face[5:10], face[:5]) and not np.array_equal(face[0], face[1])
    assert np.isfinite(np.asarray(prep["eeg"])).all() and np.asarray(prep["eeg"]).std() > 1


def test_seed_iv_sized_writer(tmp_path):
    prep = load_prepared(b.write_seed_iv_sized(tmp_path / "s", n=2000))
    assert prep["eeg_de"].shape[1:] == (62, 5) and set(np.unique(prep["label"])) == {0, 1, 2, 3}


def test_project_path_and_plain_loop_run_on_cpu(tmp_path):
    prep = b.write_deap_sized(tmp_path / "d", TINY, face_segments=2, log=lambda *a: None)
    rows = b.throughput_compare(str(prep), batch_size=4, steps=1, device="cpu", autocasts=("off", "bf16"),
                                method="baseline_eeg")
    assert [r["autocast"] for r in rows] == ["off", "off"]  # autocast has no effect on the CPU
    for r in rows:
        assert r["project_samples_per_s"] > 0 and r["plain_samples_per_s"] > 0 and r["device"] == "cpu"


def test_grid_projection_counts_every_measured_cell():
    cfg = b.paper_config()
    g = b.project_grid(cfg, {frozenset(["eeg"]): 1e-3})
    assert g["cells"] > 0 and g["hours"] > 0 and g["unmeasured"]
    assert g["mem_mb_max"] >= g["mem_mb_min"] > 0
