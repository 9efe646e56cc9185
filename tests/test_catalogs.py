"""Each catalog declared once and read everywhere: a split kind, a metric and a loader parameter
registered in a temporary module show in the schema, the config check and the listing; the
README's listing and the schema file's generated sections match the catalogs; a data set that
declares a k-fold or LOSO split plans and runs."""
from __future__ import annotations

import copy
import sys
import textwrap

import numpy as np
import pytest
import yaml

from conftest import ROOT, tiny_config
from cmkd import listing
from cmkd.data import split_kinds
from cmkd.errors import ConfigError
from cmkd.validation import _schema, sync_schema_file, validate_config

TOY_MODULE = '''
"""A split kind, a metric and a loader declared by a module of their own."""
import numpy as np

from cmkd.data import split_kinds
from cmkd.metrics import Metric
from cmkd.params import Param, params_from_literals

KIND = split_kinds.SplitKind(
    "odd_even", "trial", False, {"odd_tests": Param(True, "bool", doc="odd trials test")},
    "even trials train, odd trials test (a toy)", make="toy_catalog_mod:make", paper="Toy et al. 2031")
METRIC = Metric("toy_score", "classification", True, "%", 2, False, "toy score (%)")
LOADER = {"name": "toy_loader", "prepare": "prepare"}
PARAMS = params_from_literals({"gain": {"default": 1.0, "lo": 0.0, "lo_open": True, "doc": "toy gain of the signal"}},
                              "toy_loader")


def make(kind, subject, trial, session, protocol, seed=0, labels=None):
    trial = np.asarray(trial)
    odd = (trial % 2 == 1) if protocol.get("odd_tests", True) else (trial % 2 == 0)
    idx = np.arange(trial.size)
    return {"train": idx[~odd][1:], "val": idx[~odd][:1], "test": idx[odd]}


def prepare(root, out, params):
    raise NotImplementedError
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """Register the toy module's split kind, metric and loader (the catalogs restored afterwards)."""
    import cmkd.data as data_pkg
    import cmkd.metrics as metrics_mod
    from cmkd.data import LoaderInfo

    (tmp_path / "toy_catalog_mod.py").write_text(textwrap.dedent(TOY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("toy_catalog_mod", None)
    import toy_catalog_mod as mod

    monkeypatch.setattr(split_kinds, "SPLIT_KINDS", dict(split_kinds.SPLIT_KINDS))
    split_kinds.register(mod.KIND)
    monkeypatch.setitem(metrics_mod.METRICS, mod.METRIC.name, mod.METRIC)
    monkeypatch.setitem(data_pkg.LOADER_INFO, "toy_loader", LoaderInfo(name="toy_loader", module="toy_catalog_mod",
                                                                       prepare="prepare", title="Toy"))
    monkeypatch.setitem(data_pkg.LOADERS, "toy_loader", "toy_catalog_mod:prepare")
    yield mod
    sys.modules.pop("toy_catalog_mod", None)


def _default() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_a_new_split_kind_is_in_the_schema_the_check_the_split_and_the_listing(toy):
    split = _schema()["properties"]["split"]
    assert "odd_even" in split["properties"]["kind"]["enum"]
    assert split["properties"]["odd_tests"]["type"] == "boolean"
    cfg = _default()
    cfg["methods"]["baseline"]["split"] = {"kind": "odd_even", "odd_tests": False}
    validate_config(cfg)  # the method's split uses the new kind and its parameter
    bad = _default()
    bad["methods"]["baseline"]["split"] = {"kind": "odd_even", "odd_tests": "yes"}
    with pytest.raises(ConfigError, match=r"methods\.baseline\.split\.odd_tests: must be true or false"):
        validate_config(bad)
    bad = _default()
    bad["split"]["odd_tests"] = 3  # in the top-level section the schema checks the declared type
    with pytest.raises(ConfigError, match=r"split\.odd_tests: must be of type boolean"):
        validate_config(bad)
    # the split is made by the declared implementation, with the kind's default filled in
    from cmkd.data.splits import run_splits

    trial = np.repeat(np.arange(6), 2)
    (sp,) = run_splits({"subject": np.zeros(12, int), "trial": trial}, 0, {"kind": "odd_even"}, None, "regression")
    assert set(trial[sp["test"]].tolist()) == {1, 3, 5}
    text = listing.render(["splits"])
    assert "#### `odd_even`" in text and "`odd_tests`" in text and "Toy et al. 2031" in text


def test_a_new_metric_is_in_the_schema_the_check_and_the_listing(toy):
    assert "toy_score" in _schema()["properties"]["tables"]["items"]["properties"]["metric"]["enum"]
    cfg = _default()
    cfg["tables"][0]["metric"] = "toy_score"
    validate_config(cfg)
    cfg = _default()
    cfg["tables"][0]["metric"] = "toy_scor"
    with pytest.raises(ConfigError, match=r"tables\[0\]\.metric: must be one of"):
        validate_config(cfg)
    assert "| `toy_score` | classification |" in listing.render(["metrics"])


def test_a_new_loader_parameter_is_in_the_schema_the_check_and_the_listing(toy):
    loaders = _schema()["properties"]["datasets"]["additionalProperties"]["allOf"]
    mine = [x for x in loaders if x["if"]["properties"]["loader"]["const"] == "toy_loader"]
    assert mine and mine[0]["then"]["properties"]["params"]["properties"]["gain"]["exclusiveMinimum"] == 0.0
    cfg = _default()
    cfg["datasets"]["toy"] = {"loader": "toy_loader", "modalities": ["eeg"], "params": {"gain": 2.0}}
    validate_config(cfg)  # a data set no experiment uses: its parameters are checked all the same
    from cmkd.feasibility import check_dataset_params

    with pytest.raises(ConfigError, match=r"datasets\.toy\.params\.gain: must be > 0"):
        check_dataset_params("toy", {"loader": "toy_loader", "params": {"gain": -1.0}})
    with pytest.raises(ConfigError, match=r"datasets\.toy\.params\.gian: unknown parameter of loader 'toy_loader'"):
        check_dataset_params("toy", {"loader": "toy_loader", "params": {"gian": 1.0}})
    cfg["datasets"]["toy"]["params"]["gain"] = 0  # the schema refuses it before the check
    with pytest.raises(ConfigError, match=r"datasets\.toy\.params\.gain: must be > 0"):
        validate_config(cfg)
    text = listing.render(["loaders"])
    assert "#### `toy_loader`" in text and "| `gain` | number (0, inf) | `1.0` | toy gain of the signal |" in text


def test_listing_names_every_registered_item_with_its_paper():
    from cmkd.data import LOADER_INFO
    from cmkd.feasibility import encoder_params
    from cmkd.methods import REGISTRY
    from cmkd.metrics import METRICS

    text = listing.render()
    for names in (REGISTRY, LOADER_INFO, encoder_params(), split_kinds.SPLIT_KINDS, METRICS):
        for n in names:
            assert f"`{n}`" in text, n
    assert "Hinton et al. 2015" in text  # the method's paper, from its REGISTER entry
    assert "| `temperature` | number (0, inf) | `20.0` |" in text
    assert "| `num_T` | int [1, inf) | `15` |" in text  # an encoder's parameter, declared in cmkd.models.registry


def test_readme_listing_and_schema_file_match_the_catalogs(tmp_path):
    assert listing.sync_file(ROOT / "README.md", check=True), \
        "README.md's catalog listing is stale: run python -m cmkd list --sync README.md"
    assert sync_schema_file(check=True) == [], \
        "config/schema.yaml's generated sections are stale: run python -m cmkd list --sync-schema"
    # the checks see a difference
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text().replace("| `num_T` | int [1, inf)", "| `num_T` | int [2, inf)"))
    assert not listing.sync_file(readme, check=True)
    schema = tmp_path / "schema.yaml"
    schema.write_text((ROOT / "config" / "schema.yaml").read_text().replace("- cross_session\n", "", 1))
    assert sync_schema_file(check=True, path=schema) == ["split"]


def test_the_schema_file_validates_alone():
    """Tools that read config/schema.yaml without cmkd (snakemake.utils.validate) get the same sections."""
    from snakemake.utils import validate

    cfg = _default()
    cfg["split"].pop("n_folds", None)
    cfg["split"].pop("stratify", None)
    validate(cfg, str(ROOT / "config" / "schema.yaml"))
    assert cfg["split"]["n_folds"] == split_kinds.N_FOLDS.default and cfg["split"]["stratify"] is True


def test_list_command(capsys):
    from cmkd.cli import main

    assert main(["list", "splits"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("### Split kinds") and "#### `kfold`" in out and "### Methods" not in out
    assert main(["list", "bogus"]) == 2
    assert "unknown section 'bogus'" in capsys.readouterr().err


def test_effective_run_config_is_the_run_spec_merge():
    from cmkd.config import effective_run_config, iter_cells, run_spec

    cfg = _default()
    validate_config(cfg)
    cfg["tracks"]["face_eeg-to-face"]["split"] = {"val_fraction": 0.3}
    for ds, tr, dim, m in list(iter_cells(cfg))[:20]:
        eff = effective_run_config(cfg, ds, tr, dim, m, 0)
        spec = run_spec(cfg, ds, tr, dim, m, 0)
        assert (eff["split"], eff["training"], eff["params"]) == (spec["split"], spec["training"], spec["params"])
        assert eff["split_settings"] == split_kinds.settings(spec["split"])
        if tr == "face_eeg-to-face" and not cfg["methods"][m].get("split", {}).get("val_fraction"):
            assert eff["split"]["val_fraction"] == 0.3  # the track's split over the global one


# ----------------------------------------------------------------------------------------------
# a data set that declares a k-fold or leave-one-subject-out split


@pytest.mark.parametrize("own", [{"kind": "kfold", "n_folds": 3}, {"kind": "loso"}])
def test_a_dataset_kfold_or_loso_split_is_accepted_and_reaches_the_run(own):
    from cmkd.config import run_spec

    cfg = _default()
    cfg["datasets"]["synthetic"]["split"] = dict(own)
    validate_config(cfg)  # was refused: "unknown key(s) [] or kind 'kfold'"
    spec = run_spec(cfg, "synthetic", "face_eeg-to-face", "arousal", "baseline", 0)
    assert spec["split"]["kind"] == own["kind"]
    assert spec["split"]["n_folds"] == own.get("n_folds", cfg["split"]["n_folds"])
    bad = copy.deepcopy(cfg)
    bad["datasets"]["synthetic"]["split"]["n_folds"] = 1
    with pytest.raises(ConfigError, match=r"datasets\.synthetic\.split\.n_folds: must be an integer >= 2"):
        validate_config(bad)


def test_make_split_level_fold_kinds_from_a_dataset_split():
    from cmkd.data.splits import make_split, run_splits

    subject = np.repeat(np.arange(3), 8)
    trial = np.tile(np.repeat(np.arange(4), 2), 3)
    y = (trial % 2).astype(int)
    folds = run_splits({"subject": subject, "trial": trial}, 0, {"kind": "kfold", "n_folds": 3}, y, "classification")
    assert len(folds) == 3
    tested = np.concatenate([f["test"] for f in folds])
    assert np.array_equal(np.sort(tested), np.arange(subject.size))
    folds = run_splits({"subject": subject, "trial": trial}, 0, {"kind": "loso"}, y, "classification")
    assert [sorted(set(subject[f["test"]].tolist())) for f in folds] == [[0], [1], [2]]
    with pytest.raises(ConfigError, match="makes several folds per seed"):
        make_split(subject, trial, 0, kind="kfold")


def test_a_dataset_kfold_split_trains_end_to_end(tmp_path):
    """The data set's own split (kfold) goes from the config through the run spec to a trained
    run of one model per fold."""
    from cmkd.config import run_dir, run_spec
    from cmkd.data.synthetic import write_synthetic
    from cmkd.train import run

    cfg = tiny_config(results=str(tmp_path / "res"))
    cfg["training"].update({"max_epochs": 1, "patience": 1})
    cfg["datasets"]["synthetic"]["split"] = {"kind": "kfold", "n_folds": 2}
    cfg["experiments"][0]["methods"] = ["baseline"]
    cfg["tables"] = []
    validate_config(cfg)
    write_synthetic(f"{cfg['results']}/prepared/synthetic", cfg["datasets"]["synthetic"]["params"], 0)
    spec = run_spec(cfg, "synthetic", "face_eeg-to-face", "arousal", "baseline", 0)
    m = run(spec, run_dir(cfg, "synthetic", "face_eeg-to-face", "arousal", "baseline", 0))
    assert m["protocol"]["kind"] == "kfold" and [f["fold"] for f in m["folds"]] == [0, 1]


def test_a_dataset_kfold_split_plans_with_snakemake(tmp_path, snakemake_runner):
    cfg = tiny_config(results="results")
    cfg["datasets"]["synthetic"]["split"] = {"kind": "loso"}
    r = snakemake_runner(tmp_path, "-n", "--quiet", "rules", config=cfg)
    assert r.returncode == 0, r.stderr[-3000:]


def test_splits_and_protocols_form_no_import_cycle():
    """cmkd.data.protocols imports cmkd.data.splits; splits reaches a protocol's implementation only
    through its split kind's declaration (``make``), never by an import."""
    import ast

    def imports(name: str) -> set[str]:
        tree = ast.parse((ROOT / "src" / "cmkd" / "data" / f"{name}.py").read_text())
        out = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                out.add(node.module)
                out.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
        return out

    assert "cmkd.data.splits" in imports("protocols")
    assert not {"cmkd.data.protocols", "cmkd.data.protocols.protocol_split"} & imports("splits")
    assert not {"cmkd.data.protocols", "cmkd.data.splits"} & imports("split_kinds")
