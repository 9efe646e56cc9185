"""The report's text is generated from the config that ran: the protocol it names, the Holm families."""
from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest
import yaml

from cmkd.config import deep_merge

ROOT = Path(__file__).resolve().parents[1]


def render(caption: str, cfg: dict) -> str:
    """A caption as Snakemake's report renders it (jinja2 Environment with trim_blocks and lstrip_blocks)."""
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    text = (ROOT / "report" / caption).read_text(encoding="utf-8")
    return env.from_string(text).render(snakemake=SimpleNamespace(config=cfg, wildcards={}))


def _protocol(text: str) -> str:
    return text[text.index("Protocol"):text.index("Never split")]


def test_front_page_names_the_split_that_ran():
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    n = cfg["split"]["n_folds"]
    p = _protocol(render("workflow.rst", cfg))
    assert f"{n}-fold cross-validation over trials" in p
    assert "ratios" not in p and " : ".join(str(r) for r in cfg["split"]["ratios"]) not in p.split("Configured")[0]
    assert f"{cfg['split']['val_fraction']} of each fold's training trials" in p
    # the methods with their own split are listed (the protocols table's and the leakage runs)
    assert "baseline_loso: loso" in p and "baseline_trial: trial" in p
    cfg["split"] = {"kind": "trial", "ratios": [0.7, 0.15, 0.15], "stratify": True}
    p = _protocol(render("workflow.rst", cfg))
    assert "one split per seed by trial" in p and "0.7 : 0.15 : 0.15" in p and "fold" not in p.split("Configured")[0]
    cfg["split"] = {"kind": "kfold", "n_folds": 5, "folds_by": "subject", "val_fraction": 0.1}
    assert "5-fold cross-validation over trials, each subject's trials" in render("workflow.rst", cfg)


def test_front_page_of_the_paper_grid_names_each_protocol():
    cfg = deep_merge(yaml.safe_load((ROOT / "config.yaml").read_text()),
                     yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))
    p = _protocol(render("workflow.rst", cfg))
    assert "by trial" in p and "data set seed: chronological" in p


@pytest.mark.parametrize("caption", ["table.rst", "bars.rst"])
def test_table_captions_name_the_split_that_ran(caption):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    text = render(caption, cfg)
    assert f"{cfg['split']['n_folds']}-fold cross-validation" in text
    assert "ratios" not in text


def test_every_caption_that_holm_adjusts_names_its_family():
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for f in sorted((ROOT / "report").glob("*.rst")):
        text = render(f.name, cfg)
        if "Holm" in text:
            assert "family" in text.lower(), f"{f.name} mentions Holm without naming its family"


def test_claims_caption_labels_synthetic_runs_a_demonstration():
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert "**Demonstration**" in render("claims.rst", cfg)
    for v in cfg["datasets"].values():
        v["synthetic"] = False
    text = render("claims.rst", cfg)
    assert "**Demonstration**" not in text and "tost_p" in text
