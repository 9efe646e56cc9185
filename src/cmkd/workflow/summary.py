"""The specs the summary jobs (tables, statistics, claims) are given, from the config."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from cmkd.config import effective_run_config
from cmkd.data import split_kinds
from cmkd.feasibility import face_encoder
from cmkd.workflow.grid import Grid


def project_file(config_value: str, basedir: str | Path) -> str:
    """A file the config names (published tables, claims): as given when absolute or found from
    the working directory, else in the project's folder."""
    p = Path(config_value)
    return str(p if (p.is_absolute() or p.exists()) else Path(basedir) / p)


def track_references(config: dict) -> dict[str, list[str]]:
    """The reference methods of every track (default ``[baseline]``)."""
    return {t: list(v.get("references") or ["baseline"]) for t, v in config["tracks"].items()}


def references_json(config: dict) -> str:
    return json.dumps(track_references(config), sort_keys=True)


def test_fraction(grid: Grid) -> float:
    """The test share of the grid's single splits (the Nadeau-Bengio correction's fallback for runs
    that recorded no split sizes): ``ratios`` of every cell's effective split
    (:func:`cmkd.config.effective_run_config`, its kind's defaults filled) whose kind declares
    ratios, the share most cells use (the first of a tie); the config's top-level split where no cell
    runs a single split."""
    config = grid.config
    shares: list[float] = []
    for ds, tr, _dim, m in grid.cells:
        sp = effective_run_config(config, ds, tr, None, m)["split_settings"]
        if "ratios" in split_kinds.get(sp["kind"]).params:
            shares.append(sp["ratios"][2] / sum(sp["ratios"]))
    if not shares:
        ratios = split_kinds.settings(config["split"])["ratios"]
        return ratios[2] / sum(ratios)
    return max(dict.fromkeys(shares), key=shares.count)


def claims_datasets_json(config: dict) -> str:
    """Per data set: the name its published numbers go by, and whether it is synthetic."""
    return json.dumps({d: {"published_as": v.get("published_as", d), "synthetic": bool(v.get("synthetic"))}
                       for d, v in config["datasets"].items()}, sort_keys=True)


def frozen_visual(config: dict, cells) -> dict[str, str]:
    """``{"dataset/track/method": description}`` of every run whose face encoder is frozen
    (``encoders.face.frozen``, cmkd.run.frame_features), for the tables' generated notes."""
    out = {}
    for ds, tr, _dim, m in cells:
        fe = face_encoder(config, m, tr)
        if fe is None or not isinstance(fe[1], dict) or fe[1].get("frozen") is not True:
            continue
        enc = fe[1]
        weights = ("ImageNet weights from timm" if enc.get("pretrained") else
                   "weights from a local file" if enc.get("pretrained_path") else "random initialisation")
        size = enc.get("img_size")
        out[f"{ds}/{tr}/{m}"] = (f"frozen {enc.get('arch')} features ({weights}{f', {size} px' if size else ''}), "
                                 f"extracted once per frame and cached, with a {enc.get('frozen_hidden', 256)}-wide "
                                 "head trained on them (the backbone is not fine-tuned)")
    return out


def tables_spec(grid: Grid, published_file: str | Path) -> str:
    """The spec of the tables job (``cmkd tables --spec``): the published numbers, the tables, the
    data sets, the protocol (with every run's split settings, for the tables that describe the
    splits as run), the references and the trivial baselines, as JSON."""
    config = grid.config
    with open(published_file, encoding="utf-8") as f:
        published = yaml.safe_load(f)
    return json.dumps(
        {
            "published": published,
            "tables": config.get("tables", []),
            "datasets": config["datasets"],
            "protocol": {"split": config["split"], "seeds": config["seeds"], "dimensions": config["dimensions"],
                         "splits": {f"{ds}/{tr}/{m}": effective_run_config(config, ds, tr, None, m)["split"]
                                    for ds, tr, _dim, m in grid.cells},
                         "visual": frozen_visual(config, grid.cells)},
            "references": track_references(config),
            "trivial_methods": {m: config["methods"][m]["class"] for m in config.get("trivial_methods") or []},
            # what each method distils from (methods.<name>.requires): the cost of more runs counts them too
            "requires": {m: list(e["requires"].values()) for m, e in config["methods"].items() if e.get("requires")},
        },
        # no sort_keys: a table's rows keep the config's order (the config loads in file order)
    )
