"""Planning imports no torch: `snakemake -n` of the default and of the paper grid, and `cmkd check`,
run in an interpreter where importing torch fails (a login node without torch plans the grid)."""
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT

#: a finder ahead of every other that refuses torch and its submodules
BLOCK = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch blocked")
        return None
sys.meta_path.insert(0, _NoTorch())
"""

SNAKEMAKE = BLOCK + """
from snakemake.cli import main
sys.argv = ["snakemake", *sys.argv[1:]]
main()
"""

CMKD = BLOCK + """
import runpy
sys.argv = ["cmkd", *sys.argv[1:]]
runpy.run_module("cmkd", run_name="__main__")
"""


def _run(code: str, *args: str, cwd, timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def _workdir(tmp_path):
    """A working folder with the default config (Snakemake reads config.yaml from it)."""
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    return tmp_path


def _paper_roots(tmp_path) -> str:
    """Small generated data roots in the documented formats, as scripts/paper_dryrun.sh writes them."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fixtures import write_all
    from fixtures_seed import write_all_seed

    roots = write_all(tmp_path / "raw")
    roots.update(write_all_seed(tmp_path / "raw"))
    # the cross-session and raw-EEG entries point at the same roots (a dry run reads no data file)
    roots.update(seed_iv_cross_session=roots["seed_iv"], seed_raw=roots["seed"], seed_iv_raw=roots["seed_iv"])
    out = tmp_path / "roots.yaml"
    out.write_text(yaml.safe_dump({"datasets": {k: {"root": str(v)} for k, v in roots.items()}}))
    return str(out)


def test_the_blocker_blocks_torch(tmp_path):
    r = _run(BLOCK + "import torch", cwd=tmp_path)
    assert r.returncode != 0 and "ImportError: torch blocked" in r.stderr


def test_default_dry_run_without_torch(tmp_path):
    wd = _workdir(tmp_path)
    r = _run(SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-n", "--quiet", "rules", cwd=wd)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "torch blocked" not in out, out[-4000:]
    assert "train_trivial" in out and "train " in out


@pytest.mark.parametrize("extra", [[], ["--set-resources", "train:gpu=1"]], ids=["plain", "gpu-jobs"])
def test_paper_grid_dry_run_without_torch(tmp_path, extra):
    """The paper grid plans where torch cannot be imported. (Its planning time is a speed target,
    measured by scripts/paper_dryrun.sh, which CI runs: not asserted here, where a loaded machine
    would make the test flaky.)"""
    wd = _workdir(tmp_path)
    roots = _paper_roots(tmp_path)
    r = _run(SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-n", "--configfile", str(ROOT / "config/paper.yaml"), roots,
             "--quiet", "rules", *extra, cwd=wd)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "torch blocked" not in out, out[-4000:]
    assert "train_trivial" in out and "cd_diagram" in out


@pytest.mark.parametrize("grid", ["default", "paper"])
def test_cmkd_check_without_torch(tmp_path, grid):
    wd = _workdir(tmp_path)
    args = ["--configfile", str(ROOT / "config/paper.yaml"), "--configfile", _paper_roots(tmp_path)] if grid == "paper" else []
    r = _run(CMKD, "check", *args, cwd=wd)
    assert r.returncode == 0 and "config OK" in r.stdout, (r.stdout + r.stderr)[-3000:]
    # the cluster check reads the torch build from its files (a CPU build here: GPU jobs refused)
    r = _run(CMKD, "check", "--cluster", "--allow-cpu-torch", *args, cwd=wd)
    assert r.returncode == 0 and "torch blocked" not in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
