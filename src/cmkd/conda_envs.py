"""The conda environments of the jobs (``--sdm conda``), with every path made absolute.

``envs/cpu.yaml`` and ``envs/cuda.yaml`` name the lock file and the project relative to their own
folder (``-r ../requirements.lock.txt``, ``-e ..``). Conda runs pip from its own working folder
(Snakemake's ``.snakemake/conda/``), where those relative paths point at nothing; so the workflow
uses :func:`resolved_env_file`, a copy of the template whose pip path arguments are absolute
(quoted for pip's own option parser), written once per checkout beside the results. Torch-free.
"""
from __future__ import annotations

import shlex
from pathlib import Path

import yaml

#: pip options whose argument is a path (relative to the env file's folder in the templates)
PATH_OPTIONS = ("-r", "--requirement", "-c", "--constraint", "-e", "--editable")


def _resolve_pip_line(line: str, base: Path) -> str:
    parts = line.split(None, 1)
    if len(parts) == 2 and parts[0] in PATH_OPTIONS:
        arg = parts[1].strip()
        if "://" not in arg and not Path(arg).is_absolute():
            return f"{parts[0]} {shlex.quote(str((base / arg).resolve()))}"
    return line


def resolved_env(template: Path) -> dict:
    """The template's environment with every pip path argument absolute."""
    template = Path(template)
    doc = yaml.safe_load(template.read_text(encoding="utf-8"))
    base = template.parent
    deps = []
    for d in doc.get("dependencies") or []:
        if isinstance(d, dict) and "pip" in d:
            d = {"pip": [_resolve_pip_line(str(x), base) for x in d["pip"]]}
        deps.append(d)
    return {**doc, "dependencies": deps}


def pip_paths(env: dict) -> list[Path]:
    """Every path a pip line of ``env`` names (what conda's pip will open)."""
    out = []
    for d in env.get("dependencies") or []:
        if isinstance(d, dict) and "pip" in d:
            for line in d["pip"]:
                parts = str(line).split(None, 1)
                if len(parts) == 2 and parts[0] in PATH_OPTIONS and "://" not in parts[1]:
                    out.append(Path(shlex.split(parts[1])[0]))
    return out


def resolved_env_file(template: Path, out_dir: Path) -> Path:
    """``out_dir/<template name>``: the template with absolute pip paths (rewritten only when its
    content changes, so Snakemake's environment hash stays put)."""
    env = resolved_env(template)
    text = (f"# generated from {Path(template).resolve()} by cmkd.conda_envs: pip paths made absolute\n"
            + yaml.safe_dump(env, sort_keys=False))
    out = Path(out_dir) / Path(template).name
    if not out.is_file() or out.read_text(encoding="utf-8") != text:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return out


def job_env_file(basedir: str | Path, name: str, conda: bool, results: str | Path) -> str:
    """The conda environment file of the jobs (``envs/<name>.yaml`` of the project in ``basedir``):
    under ``--sdm conda`` (``conda``) a copy whose pip paths are absolute, written under
    ``results/.conda-envs``, since conda runs pip from ``.snakemake/conda/``."""
    template = Path(basedir) / "envs" / f"{name}.yaml"
    if not conda:
        return str(template)
    return str(resolved_env_file(template, Path(results).resolve() / ".conda-envs"))
