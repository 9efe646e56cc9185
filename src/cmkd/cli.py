"""Command line: ``python -m cmkd <command>``; every workflow rule calls one of these.

User errors (bad config value, missing or corrupt file) print one line naming the culprit and
exit with status 2; no traceback.
"""
from __future__ import annotations

import time

_T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402

from cmkd.analysis.figures import MAX_POINTS, PROJECTIONS  # noqa: E402
from cmkd.errors import CmkdError, ConfigError  # noqa: E402
from cmkd.metrics import METRICS, headline_metrics, primary_metric  # noqa: E402


def _json_arg(value: str):
    """A JSON string, or @path to a JSON/YAML file; bad input is one :class:`ConfigError` naming the
    file or the argument (the parser turns it into a usage error: exit 2, no traceback)."""
    if value.startswith("@"):
        p = Path(value[1:])
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{p}: cannot read the file ({e.strerror or e})") from None
        if p.suffix in (".yaml", ".yml"):
            try:
                return yaml.safe_load(text)
            except yaml.YAMLError as e:
                from cmkd.validation import _yaml_error  # lazy: startup

                raise _yaml_error(p, e) from None
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{p}:{e.lineno}: not valid JSON: {e.msg}") from None
    try:
        return json.loads(value)
    except json.JSONDecodeError as e:
        raise ConfigError(f"argument is not valid JSON: {e}") from None


def _typed(convert, what: str):
    """An argparse ``type``: ``convert(value)``, any error a usage error naming ``what``."""
    def parse(value: str):
        try:
            return convert(value)
        except CmkdError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {what}, got {value!r}") from None
    parse.__name__ = what
    return parse


def _nonneg_int(value: str) -> int:
    v = int(value)
    if v < 0:
        raise ValueError(value)
    return v


def _pos_int(value: str) -> int:
    v = int(value)
    if v < 1:
        raise ValueError(value)
    return v


def _rating(value: str) -> float:
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(value)
    return v


JSON_ARG = _typed(_json_arg, "JSON or @file")


def cmd_prepare(a) -> None:
    params = a.params or {}
    name = a.dataset
    from cmkd.data import loader  # lazy: startup

    f = loader(name)  # cmkd.data.LOADERS
    if name == "synthetic":
        f(a.out, params, a.seed)
        return
    if not a.root:
        raise ConfigError(f"prepare {name}: --root (datasets.{name}.root) is required for a real data set")
    f(a.root, a.out, params)


def cmd_inspect(a) -> None:
    """Check a raw data folder without preparing it (cmkd.data.rawcheck); exit 1 on problems."""
    from cmkd.data.rawcheck import main as inspect_main  # lazy: startup

    rc = inspect_main(a.loader, a.root, a.params or {}, a.threshold, a.tie, seed=a.seed)
    if rc:
        raise SystemExit(rc)


def cmd_train(a) -> None:
    """Train one run (--spec + --out) or several in one process (--specs: a list of {spec, out})."""
    from cmkd.train import run  # lazy: startup

    if a.specs:
        items = a.specs
        if not isinstance(items, list) or not all(isinstance(i, dict) and {"spec", "out"} <= set(i) for i in items):
            raise ConfigError("train --specs: expected a JSON list of {\"spec\": ..., \"out\": ...}")
    elif a.spec and a.out:
        items = [{"spec": a.spec, "out": a.out}]
    else:
        raise ConfigError("train: give --specs, or --spec and --out")
    t_start = _T_START
    for item in items:
        run(item["spec"], item["out"], t_process_start=t_start)
        t_start = time.perf_counter()  # later runs of this process start where the previous ended


def cmd_frame_features(a) -> None:
    """Extract the frozen face features of one data set and encoder settings (the workflow's job)."""
    from cmkd.run.frame_features import extract_job  # lazy: startup (torch)
    from cmkd.run.torch_setup import setup_torch  # lazy: startup (torch)

    extract_job(a.prepared, a.encoder, a.out, setup_torch(a.threads, 0, a.device))


def cmd_tune(a) -> None:
    """Run (or resume) the hyperparameter studies of tuned runs (--specs: a list of {spec, out})."""
    from cmkd.study import run_study  # lazy: startup

    items = _json_arg(a.specs)
    if not isinstance(items, list) or not all(isinstance(i, dict) and {"spec", "out"} <= set(i) for i in items):
        raise ConfigError("tune --specs: expected a JSON list of {\"spec\": ..., \"out\": ...}")
    for item in items:
        run_study(item["spec"], item["out"])


def cmd_tuning_cost(a) -> None:
    from cmkd.tuning import write_cost  # lazy: startup

    write_cost(a.studies, a.out, a.html)


def cmd_aggregate(a) -> None:
    from cmkd.analysis.tables import aggregate_runs  # lazy: startup

    files = list(a.metrics)
    if a.metrics_list:
        files += [line.strip() for line in Path(a.metrics_list).read_text().splitlines() if line.strip()]
    aggregate_runs(files, a.out, subjects_csv=a.subjects_out)


def cmd_tables(a) -> None:
    from cmkd.analysis.tables import write_tables  # lazy: startup

    write_tables(a.runs, a.spec, a.out_dir, stats_csv=a.stats, subjects_csv=a.subjects)


def cmd_cell(a) -> None:
    from cmkd.cell import run_cell  # lazy: startup

    run_cell(a.dataset, a.track, a.dimension, a.method, a.configfile or [], cores=a.cores, dry_run=a.dry_run,
             config_items=a.config, profile=a.profile, jobs=a.jobs, extra=getattr(a, "extra", None))


def cmd_bench(a) -> None:
    if a.scale == "paper":
        from cmkd.bench_scale import main as scale_main  # lazy: startup

        scale_main(device=a.device, autocast=a.autocast, face_segments=a.face_segments)
        return
    from cmkd.bench import main as bench_main  # lazy: startup

    bench_main(a.results, a.configfile)


def cmd_design(a) -> None:
    from cmkd.design import run_design  # lazy: startup

    run_design(a.table, a.configfile or [], results=a.out, cores=a.cores, profile=a.profile, jobs=a.jobs)


def _json_list(value: str | None, where: str) -> list:
    """A JSON list of strings (or a comma-separated list); empty for no value."""
    if not value:
        return []
    try:
        v = json.loads(value)
    except json.JSONDecodeError:
        return [s for s in value.split(",") if s]
    if not isinstance(v, list):
        raise ConfigError(f"{where}: expected a JSON list, got {value!r}")
    return [str(x) for x in v]


def cmd_plots_features(a) -> None:
    """t-SNE/UMAP maps of every cell of runs.csv, or of the runs whose metrics.json are given."""
    from cmkd.analysis.figures.maps import feature_maps, import_umap  # lazy: startup
    from cmkd.analysis.figures.readers import read_runs, runs_by_cell, runs_from_metrics  # lazy: startup

    if a.numba_cache and "umap" in a.kinds:
        import_umap(a.numba_cache)
    if (a.runs is None) == (not a.metrics):
        raise ConfigError("plots features: give either --runs (every cell of runs.csv) or --metrics (the runs' metrics.json)")
    runs = read_runs(a.runs) if a.runs is not None else runs_from_metrics(a.metrics)
    order, exclude = _json_list(a.order, "--order"), _json_list(a.exclude, "--exclude")
    try:
        names = json.loads(a.class_names) if a.class_names else {}
    except json.JSONDecodeError as e:
        raise ConfigError(f"--class-names: not valid JSON ({e})") from None
    if not isinstance(names, dict):
        raise ConfigError("--class-names: must map a dimension to a list of class names")
    for (ds, tr, dim), by_method in runs_by_cell(runs, exclude).items():
        cn = {i: f"{n} ({i})" for i, n in enumerate(names.get(dim) or [])}
        for kind in a.kinds:
            base = Path(a.out_dir) / ds / tr / dim / f"features_{kind}"
            feature_maps(by_method, base.with_suffix(".png"), base.with_suffix(".svg"), order,
                         title=f"{ds} / {tr} / {dim}", kind=kind, seed=a.seed, seed_index=a.seed_index,
                         class_names=cn, max_points=a.max_points)
            print(f"wrote {base}.png", flush=True)


def cmd_plots_curves(a) -> None:
    from cmkd.analysis.figures.curves import learning_curves  # lazy: startup

    by_method: dict[str, list[str]] = {}
    for p in a.histories:
        by_method.setdefault(Path(p).parent.parent.name, []).append(p)
    learning_curves(by_method, a.out_png, a.out_svg, _json_list(a.order, "--order"), title=a.title)


def cmd_plots_scatter(a) -> None:
    from cmkd.analysis.figures.published import published_vs_reproduced  # lazy: startup

    published_vs_reproduced(a.tables, a.out_png, a.out_svg, title=a.title)


def cmd_plots_cd(a) -> None:
    from cmkd.analysis.figures.rank_plots import cd_diagram  # lazy: startup

    s = cd_diagram(a.runs, a.out_png, a.out_svg, metric=a.metric, title=a.title, track=a.track or None,
                   exclude=_json_list(a.exclude, "--exclude"), alpha=a.alpha, out_json=a.out_json,
                   methods=_json_list(a.methods, "--methods") if a.methods else None, group=a.group)
    print(json.dumps({k: s[k] for k in ("metric", "statistic", "p", "n_blocks", "ranks", "note")}), flush=True)


def cmd_plots_bars(a) -> None:
    from cmkd.analysis.figures.bars import table_bars  # lazy: startup

    table_bars(a.table, a.runs, a.out_png, a.out_svg, title=a.title, track=a.track or None)


def cmd_plots_gains(a) -> None:
    from cmkd.analysis.figures.gains import gains_figure  # lazy: startup

    labels = json.loads(a.labels) if a.labels else {}
    gains_figure(a.subjects, a.out_png, a.out_svg, reference=a.reference, track=a.track or None,
                 exclude=_json_list(a.exclude, "--exclude"), order=_json_list(a.order, "--order"), labels=labels,
                 title=a.title)


def _add_plots(sub) -> None:
    """``plots {features,curves,scatter,cd,bars,gains}``: the figures of the report (cmkd.analysis.figures)."""
    plots = sub.add_parser("plots", help="figures: features | curves | scatter | cd | bars | gains",
                           description="figures of the report (cmkd.analysis.figures), each as PNG and SVG")
    fig = plots.add_subparsers(dest="figure", required=True)

    s = fig.add_parser("features", help="t-SNE/UMAP maps of test features, every cell of runs.csv or of the runs given")
    s.add_argument("--runs", help="runs.csv (its 'path' column locates features.npz)")
    s.add_argument("--metrics", nargs="+", help="instead of --runs: the runs' metrics.json (features.npz beside each)")
    s.add_argument("--out-dir", required=True, help="writes <out-dir>/<dataset>/<track>/<dimension>/features_<kind>.png|svg")
    s.add_argument("--kinds", nargs="+", default=["tsne"], choices=PROJECTIONS)
    s.add_argument("--order", help="method order as JSON list")
    s.add_argument("--exclude", help="methods left out, JSON list")
    s.add_argument("--seed", type=int, default=0, help="random_state of the projection")
    s.add_argument("--seed-index", type=int, default=0, help="which run seed to draw (0 = the first)")
    s.add_argument("--max-points", type=int, default=MAX_POINTS)
    s.add_argument("--numba-cache", default=None,
                   help="directory of the on-disk cache of UMAP's compiled numba functions, shared by the jobs "
                        "(saves ~20 CPU-s of compilation per job after the first; see figures.maps.import_umap)")
    s.add_argument("--class-names", help='JSON: {"<dimension>": ["low", "high"], ...} (label index -> name)')
    s.set_defaults(func=cmd_plots_features)

    s = fig.add_parser("curves", help="learning curves of one cell")
    s.add_argument("histories", nargs="+", help=".../<method>/seed<N>/history.csv")
    s.add_argument("--out-png", required=True)
    s.add_argument("--out-svg")
    s.add_argument("--order", help="method order as JSON list")
    s.add_argument("--title", default="")
    s.set_defaults(func=cmd_plots_curves)

    s = fig.add_parser("scatter", help="published vs reproduced, every table cell with a published number")
    s.add_argument("tables", nargs="+", help="table CSVs written by `python -m cmkd tables`")
    s.add_argument("--out-png", required=True)
    s.add_argument("--out-svg")
    s.add_argument("--title", default="Published vs reproduced")
    s.set_defaults(func=cmd_plots_scatter)

    s = fig.add_parser("cd", help="critical difference diagram (Friedman + Nemenyi over cells)")
    s.add_argument("--runs", required=True)
    s.add_argument("--metric", default=primary_metric("classification"), choices=headline_metrics())
    s.add_argument("--track", default="")
    s.add_argument("--exclude", help="methods left out, JSON list")
    s.add_argument("--alpha", type=float, default=0.05)
    s.add_argument("--methods", help="only these methods (JSON list): the like networks of one group")
    s.add_argument("--group", default="", help="name of the group (students, teachers) for the title")
    s.add_argument("--title", default="")
    s.add_argument("--out-png", required=True)
    s.add_argument("--out-svg", required=True)
    s.add_argument("--out-json")
    s.set_defaults(func=cmd_plots_cd)

    s = fig.add_parser("bars", help="bar plot of one results table (mean, 95 %% CI, seeds)")
    s.add_argument("--table", required=True, help="table CSV written by `python -m cmkd tables`")
    s.add_argument("--runs", required=True)
    s.add_argument("--track", default="")
    s.add_argument("--title", default="")
    s.add_argument("--out-png", required=True)
    s.add_argument("--out-svg")
    s.set_defaults(func=cmd_plots_bars)

    s = fig.add_parser("gains", help="per-subject gain of every method over the no-KD reference (box + points)")
    s.add_argument("--subjects", required=True, help="subjects.csv written by `python -m cmkd aggregate --subjects-out`")
    s.add_argument("--reference", required=True, help="the no-KD method every gain is taken over")
    s.add_argument("--track", default="")
    s.add_argument("--exclude", help="methods left out, JSON list")
    s.add_argument("--order", help="method order as JSON list")
    s.add_argument("--labels", help="JSON: method -> label")
    s.add_argument("--title", default="")
    s.add_argument("--out-png", required=True)
    s.add_argument("--out-svg")
    s.set_defaults(func=cmd_plots_gains)


def cmd_stats(a) -> None:
    """Paired tests per cell: runs.csv -> stats.csv (cmkd.analysis.stats.write_stats)."""
    from cmkd.analysis.stats import write_stats  # lazy: startup

    try:
        refs = json.loads(a.references)
    except json.JSONDecodeError as e:
        raise ConfigError(f"tracks.<track>.references: --references is not valid JSON ({e})") from None
    if not isinstance(refs, dict) or not all(isinstance(v, list) for v in refs.values()):
        raise ConfigError("tracks.<track>.references: must map each track to a list of methods")
    table = write_stats(a.runs, a.out, refs, a.test_fraction, a.metrics)
    print(f"wrote {a.out}: {len(table)} rows", flush=True)


def _add_stats(sub) -> None:
    """``stats --runs runs.csv --out stats.csv --references JSON ...``.

    ``--references``: JSON object track -> list of reference methods (config
    ``tracks.<t>.references``, default ``["baseline"]``); ``--test-fraction`` from the config's
    split ratios: the Nadeau-Bengio ratio of runs that recorded no split sizes (the others' ratio
    comes from their own splits).
    """
    s = sub.add_parser("stats", help="runs.csv -> stats.csv: paired tests per cell",
                       description="paired tests per cell (cmkd.analysis.stats)")
    s.add_argument("--runs", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--references", required=True, help='JSON: {"<track>": ["baseline", ...]}')
    s.add_argument("--test-fraction", type=float, default=0.1)
    s.add_argument("--metrics", nargs="+", default=list(headline_metrics()), choices=METRICS, metavar="METRIC",
                   help="metrics tested (default: the headline metrics of cmkd.metrics.METRICS)")
    s.set_defaults(func=cmd_stats)


def cmd_claims(a) -> None:
    from cmkd.analysis.claims import main as claims_main  # lazy: startup

    claims_main(a.rest)


def cmd_quote(a) -> None:
    from cmkd.analysis.quotes import main as quote_main  # lazy: startup

    quote_main(a.rest)


def cmd_check(a) -> None:
    """Check config.yaml (+ overlays, merged in order as Snakemake merges them, then --config
    items) strictly, on the workflow's own path (cmkd.validation: schema, select_datasets, then
    semantics): every table cell must map to runs in the DAG."""
    from cmkd.config import iter_cells  # lazy: startup
    from cmkd.validation import load_config, validate_config  # lazy: startup

    cfg, lines = load_config(a.configfile or [], items=a.config)
    for w in validate_config(cfg, lines, strict_tables=True):
        print(f"warning: {w}", file=sys.stderr)
    n_cells = len(list(iter_cells(cfg)))
    print(f"config OK: {n_cells} cells x {len(cfg['seeds'])} seeds; every table cell maps to runs in the DAG")
    if a.cluster:  # what this environment's torch can do for the Slurm profile's GPU jobs (torch-free)
        from cmkd.devices import cluster_check, slurm_gpus_per_job  # lazy: startup

        allow = a.allow_cpu_torch or bool(cfg.get("allow_cpu_torch"))
        for line in cluster_check(slurm_gpus_per_job(), allow_cpu_torch=allow):
            print(f"cluster: {line}")


def cmd_unlock(a) -> None:
    from cmkd.locks import clear_stale_lock  # lazy: startup

    print(f"{a.directory}: {clear_stale_lock(a.directory)}")


def cmd_list(a) -> None:
    """Print the catalogs (cmkd.listing); ``--sync``/``--check FILE``: README's block, ``--sync-schema``:
    config/schema.yaml's generated sections (``--check`` with it: exit 2 when they differ)."""
    from cmkd import listing  # lazy: startup
    from cmkd.validation import sync_schema_file  # lazy: startup

    if a.sync_schema:
        stale = sync_schema_file(check=a.check is not None)
        if stale and a.check is not None:
            raise ConfigError(f"config/schema.yaml: generated section(s) {stale} differ from the catalogs; "
                              "run python -m cmkd list --sync-schema")
        return
    if a.check or a.sync:
        path = a.check or a.sync
        if not listing.sync_file(path, check=bool(a.check)) and a.check:
            raise ConfigError(f"{path}: the catalog listing differs from the catalogs; run python -m cmkd list --sync {path}")
        return
    sys.stdout.write(listing.render(a.sections or listing.SECTIONS))


def add_list_parser(sub) -> None:
    from cmkd.listing import SECTIONS  # lazy: startup

    s = sub.add_parser("list", help="the registered methods, encoders, loaders, split kinds and metrics with their "
                       "parameters, types, defaults and papers (Markdown)")
    s.add_argument("sections", nargs="*", metavar="SECTION",
                   help=f"any of {', '.join(SECTIONS)} (default: all)")
    s.add_argument("--sync", metavar="FILE", help="fill FILE's generated blocks: the listing (README.md), a config's grid (docs/paper_grid.md), the KD weight presets (docs/kd_weights.md)")
    s.add_argument("--check", metavar="FILE", nargs="?", const="README.md",
                   help="exit 2 when FILE's block (or, with --sync-schema, config/schema.yaml) differs")
    s.add_argument("--sync-schema", action="store_true", help="write config/schema.yaml's generated sections")
    s.set_defaults(func=cmd_list)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    p = argparse.ArgumentParser(prog="python -m cmkd", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("prepare", help="raw data set -> prepared directory (.npy per array + meta.json)")
    s.add_argument("dataset", help="a loader of cmkd.data.LOADERS (the name its module's LOADER declares: synthetic, deap ...)")
    s.add_argument("--root", help="raw data root (not needed for synthetic)")
    s.add_argument("--out", required=True, help="prepared directory to write")
    s.add_argument("--params", type=JSON_ARG, help="loader/generator parameters as JSON or @file")
    s.add_argument("--seed", type=_typed(_nonneg_int, "a non-negative integer"), default=0, help="generator seed (synthetic)")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("inspect", help="check a raw data folder before preparing it (exit 1 on problems)")
    s.add_argument("loader", help="a loader of cmkd.data.LOADERS with a raw-data check (deap, mahnob_hci, synthetic ...)")
    s.add_argument("--root", help="raw data root (not needed for synthetic)")
    s.add_argument("--seed", type=_typed(_nonneg_int, "a non-negative integer"), default=None,
                   help="generator seed (synthetic; default 0)")
    s.add_argument("--params", type=JSON_ARG, help="loader parameters as JSON or @file (as datasets.<name>.params)")
    s.add_argument("--threshold", type=_typed(_rating, "a number"), default=5.0, help="rating threshold for the class balance (default 5)")
    s.add_argument("--tie", default="low", help="side of a rating equal to the threshold: low (default) | high")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("train", help="train one run from its spec")
    s.add_argument("--spec", type=JSON_ARG, help="run spec as JSON or @file")
    s.add_argument("--out", help="run directory")
    s.add_argument("--specs", type=JSON_ARG, help="JSON list (or @file) of {spec, out}: several runs (e.g. all seeds of a cell) in one process")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("frame-features", help="extract the frozen face features of a prepared data set (encoders.face.frozen)")
    s.add_argument("--prepared", required=True, help="prepared data set folder")
    s.add_argument("--encoder", required=True, type=JSON_ARG, help="the frozen face encoder's settings as JSON or @file")
    s.add_argument("--out", required=True, help="the cache folder (<results>/frame_features/<dataset>/<settings key>)")
    s.add_argument("--device", default="auto", help="auto | cpu | cuda (as the config's device)")
    s.add_argument("--threads", type=_typed(_pos_int, "an integer > 0"), default=1, help="torch threads")
    s.set_defaults(func=cmd_frame_features)

    s = sub.add_parser("tune", help="run or resume the hyperparameter studies of tuned runs (cmkd.tuning)")
    s.add_argument("--specs", required=True, help="JSON list of {spec, out: study.json} (or @file)")
    s.set_defaults(func=cmd_tune)

    s = sub.add_parser("tuning-cost", help="study.json files -> the tuning cost table (CSV + HTML for the report)")
    s.add_argument("studies", nargs="+", help="study.json files")
    s.add_argument("--out", required=True, help="CSV to write")
    s.add_argument("--html", required=True, help="HTML to write")
    s.set_defaults(func=cmd_tuning_cost)

    s = sub.add_parser("aggregate", help="metrics.json files -> runs.csv")
    s.add_argument("metrics", nargs="*")
    s.add_argument("--metrics-list", help="file with one metrics.json path per line")
    s.add_argument("--out", required=True)
    s.add_argument("--subjects-out", help="also write the per-subject (and per-session) test metrics here")
    s.set_defaults(func=cmd_aggregate)

    s = sub.add_parser("tables", help="runs.csv -> mean ± std tables (CSV, Markdown, LaTeX, HTML)")
    s.add_argument("--runs", required=True)
    s.add_argument("--spec", type=JSON_ARG, required=True, help="tables spec as JSON or @file")
    s.add_argument("--out-dir", required=True)
    s.add_argument("--stats", help="stats.csv for the significance marks")
    s.add_argument("--subjects", help="subjects.csv (aggregate --subjects-out), for tables with over: subjects")
    s.set_defaults(func=cmd_tables)

    s = sub.add_parser("cell", help="re-run one table cell (all seeds) and compare with published and previous values")
    s.add_argument("dataset")
    s.add_argument("track")
    s.add_argument("dimension")
    s.add_argument("method")
    s.add_argument("--configfile", action="extend", nargs="+", metavar="FILE",
                   help="config file(s) over config.yaml, merged in order (repeat the option or list several)")
    s.add_argument("--config", action="extend", nargs="+", metavar="KEY=VALUE",
                   help="Snakemake --config items, e.g. select_datasets=[deap]")
    s.add_argument("--profile", help="a Snakemake profile (e.g. slurm): the cell's jobs go to its executor")
    s.add_argument("-j", "--jobs", type=int, help="with --profile: jobs submitted at once (default: the profile's)")
    s.add_argument("--cores", type=int, default=2, help="without --profile: local cores (default 2)")
    s.add_argument("--dry-run", action="store_true")
    s.set_defaults(func=cmd_cell)

    s = sub.add_parser("bench", help="benchmark the workflow: per-job overhead, dry-run time, throughput, memory")
    s.add_argument("--results", default="results")
    s.add_argument("--configfile", action="append", help="grid for the dry-run timing (default config/paper.yaml)")
    s.add_argument("--scale", choices=["paper"], help="paper: rehearsal at paper sizes (DEAP-sized data set in a "
                   "temporary folder, steps of each job kind, projected cost of the paper grid; docs/scale.md)")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="--scale paper: cpu, cuda or auto")
    s.add_argument("--autocast", default="off", choices=["off", "bf16", "fp16"], help="--scale paper: training.autocast")
    s.add_argument("--face-segments", type=_typed(_pos_int, "a positive integer"), default=15, help="--scale paper: segments of face frames "
                   "rendered (repeated over the rest of the data set)")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("design", help="what a design resolves and costs: one table's rows trained under the config "
                       "(and its overlays), the table built, its method-level MDE per dimension beside the training CPU time")
    s.add_argument("table", help="a table of the config (tables.<name>)")
    s.add_argument("--configfile", action="extend", nargs="+", metavar="FILE", help="overlay(s) over config.yaml, merged "
                   "in order: the design (seeds, split, training, data set knobs)")
    s.add_argument("--out", help="results folder (default design/<table>-<key of the merged config>)")
    s.add_argument("--cores", type=_typed(_pos_int, "a positive integer"), default=2, help="without --profile: local cores (default 2)")
    s.add_argument("--profile", help="a Snakemake profile (e.g. slurm): the design's jobs go to the cluster")
    s.add_argument("--jobs", type=_typed(_pos_int, "a positive integer"), help="with --profile: jobs submitted at once")
    s.set_defaults(func=cmd_design)

    s = sub.add_parser("check", help="strict config check (CI): the workflow's validation (schema, semantics) and table cells -> runs")
    s.add_argument("--configfile", action="extend", nargs="+", metavar="FILE", help="overlay(s) over config.yaml, merged in order")
    s.add_argument("--config", action="extend", nargs="+", metavar="KEY=VALUE", help="Snakemake --config items")
    s.add_argument("--cluster", action="store_true", help="also check that the installed torch can serve the Slurm "
                   "profile's GPU jobs (CMKD_SLURM_GPUS per job, default 1); refuses a CPU build")
    s.add_argument("--allow-cpu-torch", action="store_true", help="with --cluster: accept a CPU build anyway")
    s.set_defaults(func=cmd_check)

    add_list_parser(sub)

    s = sub.add_parser("unlock-stale", help="remove the Snakemake lock a killed run left (never a live run's lock)")
    s.add_argument("--directory", default=".")
    s.set_defaults(func=cmd_unlock)

    _add_plots(sub)
    _add_stats(sub)
    s = sub.add_parser("claims", add_help=False, help="runs.csv + claims.yaml -> claims.csv: the papers' claims checked (`claims -h`)")
    s.set_defaults(func=cmd_claims)
    s = sub.add_parser("quote", add_help=False, help="fill README's and the docs' run numbers from docs/snapshot (`quote -h`)")
    s.set_defaults(func=cmd_quote)

    a, rest = p.parse_known_args(argv)
    if a.command in ("claims", "quote"):
        a.rest = rest
    elif a.command == "cell":  # `cell ... -- --workflow-profile X`: further options go to Snakemake
        a.extra = rest[1:] if rest[:1] == ["--"] else rest
    elif rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        a.func(a)
    except CmkdError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file named on the command line that cannot be read or written
        if e.filename is None:
            raise
        print(f"error: {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    return 0
