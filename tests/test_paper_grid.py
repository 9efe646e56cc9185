"""The paper grid (config/paper.yaml): the MKD experiment on DEAP EEG+EOG at the paper's sizes."""
import sys
from pathlib import Path

import numpy as np
import pytest

from cmkd.validation import load_config
from cmkd.config import iter_cells, run_spec
from cmkd.validation import check_semantics

ROOT = Path(__file__).resolve().parents[1]
MKD_TRACK = "eeg_eog-to-eog"
MKD_ROWS = {"mkd_teacher", "mkd_teacher_leaky", "baseline_eog", "mkd_student_nokd", "mkd_student", "mkd_finetune",
            "mkd_v1_hinton", "mkd_v2_fusion", "mkd_deepconvnet", "mkd_cgan"}


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures import write_deap, write_deap_video

    raw = tmp_path_factory.mktemp("raw")
    deap = write_deap(raw / "deap", subjects=(1, 2), n_trials=4)
    write_deap_video(deap, subjects=(1,), n_trials=4)  # face video for participant 1 only, as in DEAP (1-22)
    overlay = raw / "roots.yaml"
    import yaml

    paper = load_config([str(ROOT / "config/paper.yaml")])[0]
    # every real data set needs a root (a missing one is a ConfigError); only DEAP's files are read here
    roots = {name: {"root": str(raw)} for name, ds in paper["datasets"].items() if ds["loader"] != "synthetic"}
    roots.update(deap={"root": str(deap)}, deap_eeg_eog={"root": str(deap)})
    overlay.write_text(yaml.safe_dump({"datasets": roots}))
    return deap, overlay


def test_paper_grid_selects_on_accuracy_whatever_the_default_selects_on():
    """CDGKD §4.3 stops early on validation accuracy. The paper overlay is merged over config.yaml
    key by key, so it must say so itself: the default may select on the validation loss."""
    import yaml

    from cmkd.config import deep_merge

    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    for select_on in ("loss", "accuracy"):
        default["training"]["select_on"] = select_on
        paper = deep_merge(default, yaml.safe_load((ROOT / "config/paper.yaml").read_text()))
        assert paper["training"]["select_on"] == "accuracy"
        assert (paper["training"]["max_epochs"], paper["training"]["patience"]) == (100, 15)


def test_paper_grid_runs_the_mkd_track_on_deap_eeg_eog(roots, tmp_path):
    deap, overlay = roots
    cfg = load_config([str(ROOT / "config/paper.yaml"), str(overlay)])[0]
    check_semantics(cfg, strict_tables=True)  # every MKD table cell maps to runs
    ds = cfg["datasets"]["deap_eeg_eog"]
    assert ds["loader"] == "deap" and ds["modalities"] == ["eeg", "eog"] and "face" not in ds["params"]["modalities"]
    cells = {(c[2], c[3]) for c in iter_cells(cfg) if c[:2] == ("deap_eeg_eog", MKD_TRACK)}
    trivial = set(cfg["trivial_methods"])  # majority / stratified: every experiment's floor
    assert cells == {(d, m) for d in ("arousal", "valence") for m in MKD_ROWS | trivial}
    for t in (t for t in cfg["tables"] if t.get("track") == MKD_TRACK):
        assert set(t["rows"]) <= MKD_ROWS, t["name"]
    # the paper's sizes as config keys (seed 004 §4.3): IE FC 1024/512 on 2 x 256, HFE FC 512/256
    from cmkd.models.registry import build_model

    spec = run_spec(cfg, "deap_eeg_eog", MKD_TRACK, "arousal", "mkd_student", 0)
    assert spec["model"]["d_model"] == 256 and spec["split"]["feedback_fraction"] == 0.5
    inputs = {"eeg": {"shape": [32, 512]}, "eog": {"shape": [2, 512]}}
    teacher = build_model({"architecture": "mkd_teacher", "model": spec["model"], "modalities": ["eeg", "eog"],
                           "inputs": inputs, "head": spec["head"], "n_outputs": 2})
    student = build_model({"architecture": "mkd_student", "model": spec["model"], "modalities": ["eog"],
                           "inputs": inputs, "head": spec["head"], "n_outputs": 2})
    assert {(e.fc1.out_features, e.fc2.out_features) for e in teacher.extractors} == {(1024, 512)}
    assert {(e.fc1.out_features, e.fc2.out_features) for e in student.extractors} == {(512, 256)}
    # MKD Table 1's baselines at these sizes: DeepConvNet on the 2 EOG derivations; CGAN's generator as wide as
    # the teacher's EEG feature it imitates
    import torch

    deep = run_spec(cfg, "deap_eeg_eog", MKD_TRACK, "arousal", "mkd_deepconvnet", 0)
    net = build_model({"modalities": deep["modalities"], "encoders": deep["encoders"],
                       "inputs": {"eog": {"shape": [2, 512], "sampling_rate": 128}}, "head": deep["head"], "n_outputs": 2})
    assert deep["modalities"] == ["eog"] and net({"eog": torch.zeros(2, 2, 512)}).logits.shape == (2, 2)
    cg = run_spec(cfg, "deap_eeg_eog", MKD_TRACK, "arousal", "mkd_cgan", 0)
    cgan = build_model({"architecture": "cgan_student", "model": cg["model"], "modalities": cg["modalities"],
                        "encoders": cg["encoders"], "inputs": {"eog": {"shape": [2, 512], "sampling_rate": 128}},
                        "head": cg["head"], "n_outputs": 2})
    with torch.no_grad():
        t_eeg = teacher.eval()({"eeg": torch.zeros(2, 32, 512), "eog": torch.zeros(2, 2, 512)}).features["eeg"]
        assert cgan.eval()({"eog": torch.zeros(2, 2, 512)}).features["generated"].shape == t_eeg.shape
    assert cg["requires"]["teacher"]["method"] == "mkd_teacher"
    # the EEG+EOG entry keeps every participant (the face entry keeps only those with video)
    from cmkd.data.deap import prepare_deap
    from cmkd.data.prepared import load_prepared

    prep = load_prepared(prepare_deap(deap, tmp_path / "prep", ds["params"]))
    assert sorted(np.unique(np.asarray(prep["subject"])).tolist()) == [1, 2]
    assert set(prep.modalities) >= {"eeg", "eog"} and "face" not in prep.modalities


def test_paper_grid_keeps_each_papers_protocol_and_the_default_cross_validates(roots):
    """The default tests every trial (2-fold x seeds, for power: docs/statistics.md); the paper grid
    runs each paper's own protocol: one 8:1:1 split by trial per seed on DEAP/MAHNOB-HCI (CDGKD,
    MKD), the official splits on the SEED family, the leaky split only where a method asks for it."""
    _, overlay = roots
    default = load_config([])[0]
    paper = load_config([str(ROOT / "config/paper.yaml"), str(overlay)])[0]
    kinds = {}
    for c in iter_cells(default):
        m = default["methods"][c[3]]
        if (m.get("split") or {}).get("kind") is None and c[3] not in default["trivial_methods"]:
            kinds.setdefault("default", set()).add(run_spec(default, *c, 0)["split"]["kind"])
    assert kinds["default"] == {"kfold"}
    assert run_spec(default, "synthetic", "face_eeg-to-face", "arousal", "cdgkd", 0)["split"]["n_folds"] == 2
    for c in iter_cells(paper):
        spec = run_spec(paper, *c, 0)
        own = (paper["methods"][c[3]].get("split") or {}).get("kind")
        official = (paper["datasets"][c[0]].get("split") or {}).get("kind")
        assert spec["split"]["kind"] == (own or official or "trial"), c
        if spec["split"]["kind"] == "trial":
            assert spec["split"]["ratios"] == [0.8, 0.1, 0.1], c
        assert spec["split"]["kind"] not in ("kfold", "loso"), c


GRID_DOCS = ("docs/paper_grid.md", "docs/seed_family.md")


def _block_rows(text: str) -> tuple[set, set]:
    """(data sets, (data set, track) pairs) of the generated grid blocks of a doc."""
    from cmkd.listing import GRID_BLOCK

    datasets, tracks = set(), set()
    for m in GRID_BLOCK.finditer(text):
        for line in m.group("body").splitlines():
            cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
            if len(cells) == 4 and cells[0] not in ("data set", "---"):
                datasets.add(cells[0])
            if len(cells) == 6 and cells[0].isdigit():
                tracks.add((cells[1], cells[2]))
    return datasets, tracks


@pytest.mark.parametrize("doc", GRID_DOCS)
def test_docs_list_the_tracks_and_data_sets_of_the_paper_grid(doc):
    """The grid blocks of the docs are what config/paper.yaml generates (`python -m cmkd list
    --sync DOC`), and the data sets and tracks they list, and any track or SEED/DEAP/MAHNOB entry
    the prose names, are the paper grid's."""
    import re

    from cmkd.data import LOADER_INFO
    from cmkd.listing import block_config, sync_file

    assert sync_file(ROOT / doc, check=True, root=ROOT), f"{doc}: run python -m cmkd list --sync {doc}"
    text = (ROOT / doc).read_text(encoding="utf-8")
    paper = load_config([str(ROOT / "config/paper.yaml")], base=str(ROOT / "config.yaml"))[0]
    family = "seed" if "family=seed" in text else None
    shown = block_config("config/paper.yaml" + (" family=seed" if family else ""), ROOT)
    datasets, tracks = _block_rows(text)
    assert tracks == {(e["dataset"], e["track"]) for e in shown["experiments"]}
    assert datasets == {e["dataset"] for e in shown["experiments"]}
    if family is None:
        assert tracks == {(e["dataset"], e["track"]) for e in paper["experiments"]}
    named = set(re.findall(r"`([a-z_]+-to-[a-z_]+)`", text))
    assert named <= {e["track"] for e in paper["experiments"]}, named
    entries = set(re.findall(r"`((?:seed|deap|mahnob)[a-z_]*)`", text))
    assert entries <= set(paper["datasets"]) | set(LOADER_INFO), entries


def test_a_grid_block_follows_its_config(tmp_path):
    import yaml

    from cmkd.listing import sync_file

    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    doc = tmp_path / "doc.md"
    doc.write_text("x\n<!-- catalog:grid -->\n<!-- /catalog:grid -->\n", encoding="utf-8")
    assert not sync_file(doc, root=tmp_path) and sync_file(doc, check=True, root=tmp_path)
    assert "| 1 | `synthetic` | `face_eeg-to-face` |" in doc.read_text(encoding="utf-8")
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text(encoding="utf-8"))
    cfg["experiments"] = cfg["experiments"][1:]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    assert not sync_file(doc, check=True, root=tmp_path)
