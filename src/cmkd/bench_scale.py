"""A rehearsal of the paper grid at paper sizes (``python -m cmkd bench --scale paper``).

1. Writes a DEAP-sized synthetic data set in chunks into a temporary folder: 22 subjects x 40
   trials x 15 segments of 4 s (13,200 segments: DEAP's subjects with face video), EEG and EOG at
   128 Hz, 5 face frames of 224 px per segment (10 GB), and a SEED-IV-sized set of eye features
   and DE features (64,800 segments). Rendering 66,000 face frames would take a 2-core machine
   longer than the whole rehearsal, so ``face_segments`` segments of frames are rendered and
   repeated over the rest: the files have DEAP's size, and a step's cost does not depend on the
   pixels.
2. Runs a bounded number of training steps of each kind of training job (:data:`JOBS`) in its
   own process, with the components a training job uses (prepared data, the streamed or
   in-memory parts of :mod:`cmkd.data.stream`, the model registry, the method's training step,
   Adam, ``training.autocast``), at two batch sizes: the time per training sample, and the peak
   RSS (VmHWM; peak GPU memory on CUDA) of both, extrapolated linearly to the paper's batch size.
3. Projects the cost of the whole paper grid (config/paper.yaml): for every cell, seeds x (epochs
   x (training + a third of validation segments) x the measured time per sample of its student's
   job kind + :data:`cmkd.resources.MODEL_S` per further model of a run), the segments and models
   summed over the models a run trains (:func:`cmkd.resources.run_segments`: the folds of a
   k-fold or LOSO run, the subjects of a SEED-family protocol with ``models: per_subject``), and
   the memory per job the Slurm rule asks for (:func:`cmkd.resources.estimate`).

The projection is an upper bound in epochs (``max_epochs``; early stopping ends most runs
sooner) and ignores the teachers' forward passes of a distillation run (cached once per run).
"""
from __future__ import annotations

import copy
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from cmkd import accel, train
from cmkd.config import deep_merge, iter_cells, run_spec
from cmkd.data import labels, splits, stream
from cmkd.data import synthetic as syn
from cmkd.data.prepared import PreparedWriter, load_prepared
from cmkd.methods import method_class
from cmkd.models.registry import build_model
from cmkd.resources import MODEL_S, dataset_size, dataset_subjects, estimate, run_segments

ROOT = Path(__file__).resolve().parents[2]

DEAP_SIZE = {"n_subjects": 22, "n_trials": 40, "segments_per_trial": 15, "sampling_rate": 128,
             "face_size": 224, "face_frames": 5}
SEED_IV_SEGMENTS = 15 * 3 * 24 * 60

#: job kinds: (name, data set, track, dimension, method, student modalities, two batch sizes, steps)
JOBS = [
    ("TSception EEG 128 Hz (baseline_eeg)", "deap", "face_eeg-to-face", "arousal", "baseline_eeg", (8, 16), 2),
    # face batches of 8 and 16 segments: at 1-2 segments the per-sample slope is not yet linear
    # (cmkd.resources.MEASURED: 8, 16 and 32 segments lie on one line)
    ("pvt_v2_b0 face 224 px x5 (baseline)", "deap", "face_eeg-to-face", "arousal", "baseline", (8, 16), 1),
    ("face+EEG teacher (teacher)", "deap", "face_eeg-to-face", "arousal", "teacher", (8, 16), 1),
    ("MKD teacher EEG+EOG (mkd_teacher)", "deap", "eeg_eog-to-eog", "arousal", "mkd_teacher", (8, 16), 2),
    ("MKD student EOG (mkd_student_nokd)", "deap", "eeg_eog-to-eog", "arousal", "mkd_student_nokd", (16, 32), 2),
    ("eye MLP (seed_iv teacher)", "seed_iv", "eye-to-eeg_de", "emotion", "teacher", (128, 256), 3),
    ("DE MLP (seed_iv baseline)", "seed_iv", "eye-to-eeg_de", "emotion", "baseline", (128, 256), 3),
]


def _peak_rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def paper_config() -> dict:
    base = yaml.safe_load(open(ROOT / "config.yaml"))
    paper = yaml.safe_load(open(ROOT / "config" / "paper.yaml"))
    cfg = deep_merge(base, paper)
    cfg["tracks"] = deep_merge(base["tracks"], paper.get("tracks"))
    return cfg


# ----------------------------------------------------------------------------- data
def write_deap_sized(out: Path, size: dict, face_segments: int = 15, log=print) -> Path:
    """The DEAP-sized synthetic set (see the module docstring): EEG, EOG, eye features and ratings
    of every subject generated; face frames of the first ``face_segments`` segments rendered and
    repeated over the others (rendering all of them would take longer than the rehearsal)."""
    plan = syn._plan(size, 0, "bench")
    p, rng, cue = plan["p"], plan["rng"], plan["cue"]
    S, K, G = p["n_subjects"], p["n_trials"], p["segments_per_trial"]
    per = K * G
    n = S * per
    face_segments = max(1, min(int(face_segments), per))
    meta = dict(plan["meta"], bench_face_segments_rendered=face_segments)
    w = PreparedWriter(out, plan["specs"])
    try:
        for name, arr in plan["small"].items():
            w.write(name, 0, arr)
        seg_trial = np.repeat(np.arange(K), G)
        t0 = time.perf_counter()
        v, a = cue["face"]
        rendered = []
        for s0, frames in syn._face_subject_chunks(rng["face"], p, v[0], a[0], seg_trial):
            rendered.append(frames)
            if s0 + len(frames) >= face_segments:
                break
        faces = np.concatenate(rendered)[:face_segments]
        log(f"  {face_segments} segments of face frames rendered ({time.perf_counter() - t0:.0f} s)")
        reps = max(1, (64 << 20) // faces.nbytes)
        tile = np.concatenate([faces] * reps)
        for r0 in range(0, n, len(tile)):
            w.write("face", r0, tile[:min(len(tile), n - r0)])
        log(f"  face frames written ({time.perf_counter() - t0:.0f} s)")
        for s in range(S):
            v, a = cue["eeg"]
            w.write("eeg", s * per, syn._eeg_subject(rng["eeg"], p, v[s], a[s], seg_trial))
            _, a = cue["eog"]
            w.write("eog", s * per, syn._eog_subject(rng["eog"], p, a[s], seg_trial))
        log(f"  EEG and EOG of {S} subjects written ({time.perf_counter() - t0:.0f} s)")
    except BaseException:
        w.abort()
        raise
    return w.finish(meta)


def write_seed_iv_sized(out: Path, n: int = SEED_IV_SEGMENTS) -> Path:
    """A SEED-IV-sized set of eye features (31) and DE features (62 x 5), 4 classes, in chunks."""
    subjects, trials = 15, 3 * 24
    per_trial = max(1, n // (subjects * trials))
    n = subjects * trials * per_trial
    specs = {"subject": ((n,), np.int64), "trial": ((n,), np.int64), "segment": ((n,), np.int64),
             "session": ((n,), np.int64), "label": ((n,), np.int64),
             "eye": ((n, 31), np.float32), "eeg_de": ((n, 62, 5), np.float32)}
    rng = np.random.default_rng(0)
    w = PreparedWriter(out, specs)
    try:
        idx = np.arange(n)
        w.write("subject", 0, idx // (trials * per_trial))
        w.write("trial", 0, (idx // per_trial) % trials)
        w.write("segment", 0, idx % per_trial)
        w.write("session", 0, ((idx // per_trial) % trials) // 24)
        lab = ((idx // per_trial) % trials) % 4
        w.write("label", 0, lab)
        for s0 in range(0, n, 8192):
            k = min(8192, n - s0)
            c = lab[s0:s0 + k]
            w.write("eye", s0, (rng.standard_normal((k, 31)) + 0.3 * c[:, None]).astype(np.float32))
            w.write("eeg_de", s0, (rng.standard_normal((k, 62, 5)) + 0.2 * c[:, None, None]).astype(np.float32))
    except BaseException:
        w.abort()
        raise
    meta = {"dataset": "seed_iv", "synthetic": True, "source_hash": "bench",
            "channels": {"eye": [f"f{i}" for i in range(31)]}}
    return w.finish(meta)


# ----------------------------------------------------------------------------- one job kind
def run_job(cfg: dict, prepared: str, track: str, dimension: str, method: str, batch_size: int,
            steps: int, device: str = "auto", autocast: str = "off") -> dict:
    """``steps`` training steps (after one warm-up step) of one job kind; time per sample and peak memory."""
    spec = run_spec(cfg, "bench", track, dimension, method, 0) if "bench" in cfg["datasets"] else None
    tr = dict(spec["training"], batch_size=batch_size, autocast=autocast)
    dev = train.setup_torch(spec["threads"], 0, device)
    prep = load_prepared(prepared)
    dim = spec["dimension_spec"]
    task = dim.get("task", "classification")
    mods = list(spec["modalities"])
    y = labels.targets(prep, dim.get("target", dimension), task, float(dim.get("threshold", 5.0)))
    split = splits.make_split(np.asarray(prep["subject"]), np.asarray(prep["trial"]), 0,
                              stratify=y if task == "classification" else None)
    amp = accel.Amp(autocast, dev)
    t_data = time.perf_counter()
    parts, _, mode = stream.build_parts_auto(prep, mods, y, split, task, tr, dev, train.build_parts)
    t_data = time.perf_counter() - t_data
    n_classes = 1 if task == "regression" else int(dim.get("n_classes", 2))
    torch.manual_seed(0)
    student = build_model({"architecture": spec.get("architecture"), "model": spec.get("model") or {},
                           "modalities": mods, "encoders": spec["encoders"],
                           "inputs": train.model_inputs(prep, mods), "head": spec["head"], "n_outputs": n_classes})
    m = method_class(spec["class"])(student, {}, spec["params"], task, n_classes).to(dev)
    opt = torch.optim.Adam(m.trainable_parameters(), lr=float(tr["lr"]))
    if hasattr(m, "configure"):
        m.configure(parts=parts, device=dev, optimizer=opt)
    perm = torch.randperm(len(parts["train"]), generator=torch.Generator().manual_seed(0))
    batches = [perm[i * batch_size:(i + 1) * batch_size] for i in range(steps + 1)]
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    m.train()
    t0 = None
    for i, (_, batch) in enumerate(stream.iter_batches(parts["train"], batches, dev)):
        if i == 1:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with amp.autocast():
            _, terms = m.training_step(batch)
        opt.zero_grad(set_to_none=True)
        amp.backward(sum(terms.values()))
        amp.step(opt)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    out = {"step_s": dt / steps, "sample_s": dt / (steps * batch_size), "batch_size": batch_size,
           "peak_rss_mb": _peak_rss_mb(), "data_access": mode, "data_setup_s": t_data,
           "device": str(dev), **amp.info}
    if dev.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _job_subprocess(args: dict, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-m", "cmkd.bench_scale", "--job", json.dumps(args)], capture_output=True,
                       text=True, env=env, timeout=timeout)
    if r.returncode != 0:
        return {"error": (r.stderr or r.stdout)[-800:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- grid projection
def project_grid(cfg: dict, per_sample: dict[frozenset, float]) -> dict:
    """Σ over the paper grid's cells of seeds x (epochs x samples x time per sample + the further
    models' overhead), samples and models summed over the models of a run; memory per job.
    ``models``: the models the grid trains (cells x seeds x models per run)."""
    total_s, jobs, models, mems, missing = 0.0, 0, 0, [], set()
    by_dataset: dict[str, float] = {}
    for ds, track, dim, method in iter_cells(cfg):
        spec = run_spec(cfg, ds, track, dim, method, 0)
        key = frozenset(spec["modalities"])
        if key not in per_sample:
            missing.add(tuple(sorted(key)))
            continue
        n = dataset_size(cfg, ds)["n"]
        epochs = int(spec["training"]["max_epochs"])
        run = run_segments(spec["split"], n, dataset_subjects(cfg, ds))
        s = len(cfg["seeds"]) * (epochs * (run["train"] + run["val"] / 3) * per_sample[key]
                                 + (run["models"] - 1) * MODEL_S)
        total_s += s
        by_dataset[ds] = by_dataset.get(ds, 0.0) + s
        jobs += 1
        models += len(cfg["seeds"]) * run["models"]
        mems.append(estimate(cfg, ds, track, dim, method, n_seeds=len(cfg["seeds"]))["mem_mb"])
    return {"cells": jobs, "models": models, "hours": total_s / 3600,
            "hours_by_dataset": {k: v / 3600 for k, v in by_dataset.items()},
            "mem_mb_min": min(mems) if mems else 0, "mem_mb_max": max(mems) if mems else 0,
            "mem_mb_median": float(np.median(mems)) if mems else 0, "unmeasured": sorted(missing)}


def main(device: str = "auto", autocast: str = "off", face_segments: int = 15, workdir: str | None = None,
         keep: bool = False, size: dict | None = None, seed_iv_segments: int = SEED_IV_SEGMENTS,
         jobs: list | None = None) -> dict:
    t_start = time.perf_counter()
    cfg = paper_config()
    tmp = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="cmkd-bench-scale-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        size = size or DEAP_SIZE
        print(f"== data: DEAP-sized synthetic set {size} in chunks -> {tmp}", flush=True)
        t0 = time.perf_counter()
        deap = write_deap_sized(tmp / "deap", size, face_segments)
        gb = sum(f.stat().st_size for f in deap.glob("*.npy")) / 1e9
        print(f"written {gb:.1f} GB in {time.perf_counter() - t0:.0f} s "
              f"({face_segments} segments of face frames rendered, repeated over the rest)", flush=True)
        sv = write_seed_iv_sized(tmp / "seed_iv", seed_iv_segments)
        print("== training steps per job kind (own process each; time per sample after one warm-up step)", flush=True)
        rows = []
        for name, ds, track, dim, method, bss, steps in (jobs or JOBS):
            res = []
            for bs in bss:
                args = {"prepared": str(deap if ds == "deap" else sv), "track": track, "dimension": dim,
                        "method": method, "batch_size": bs, "steps": steps, "device": device, "autocast": autocast}
                r = _job_subprocess(args, timeout=300)
                res.append(r)
                if "error" in r:
                    break
            if any("error" in r for r in res):
                print(f"{name}: FAILED {res[-1]['error']}", flush=True)
                continue
            (a, b) = res
            slope = (b["peak_rss_mb"] - a["peak_rss_mb"]) / (b["batch_size"] - a["batch_size"])
            paper_bs = int(cfg["training"]["batch_size"])
            proj = b["peak_rss_mb"] + max(slope, 0.0) * (paper_bs - b["batch_size"])
            spec_mods = _student_modalities(cfg, ds, track, method)
            row = {"job": name, "modalities": spec_mods, "sample_s": b["sample_s"], "step_s": b["step_s"],
                   "batch": b["batch_size"], "peak_rss_mb": b["peak_rss_mb"], "rss_per_sample_mb": slope,
                   "projected_rss_mb_at_paper_batch": proj, "data_access": b["data_access"], "device": b["device"],
                   "autocast": b["autocast"]}
            if "peak_gpu_mb" in b:
                row["peak_gpu_mb"] = b["peak_gpu_mb"]
            rows.append(row)
            gpu = f", peak GPU {b['peak_gpu_mb']:.0f} MB" if "peak_gpu_mb" in b else ""
            print(f"{name}: {b['step_s']:.3f} s/step at batch {b['batch_size']} ({b['sample_s'] * 1e3:.2f} ms/sample), "
                  f"peak RSS {a['peak_rss_mb']:.0f} MB @{a['batch_size']} / {b['peak_rss_mb']:.0f} MB @{b['batch_size']} "
                  f"-> ~{proj:.0f} MB at batch {paper_bs}{gpu} [{b['data_access']}, {b['device']}]", flush=True)
        per_sample: dict[frozenset, float] = {}
        for r in rows:
            per_sample.setdefault(frozenset(r["modalities"]), r["sample_s"])
        print("== projected cost of the paper grid (config/paper.yaml; max_epochs, no early stop)", flush=True)
        g = project_grid(cfg, per_sample)
        unit = "GPU-hours" if rows and rows[0]["device"].startswith("cuda") else "CPU-hours (2 threads per job)"
        print(f"cells: {g['cells']} (x {len(cfg['seeds'])} seeds; {g['models']} models trained, one per fold or "
              f"per subject where a run trains several); {g['hours']:.0f} {unit}; by data set: "
              + ", ".join(f"{k} {v:.0f}" for k, v in g["hours_by_dataset"].items()), flush=True)
        print(f"memory per training job (Slurm mem_mb of the rule): min {g['mem_mb_min']} MB, "
              f"median {g['mem_mb_median']:.0f} MB, max {g['mem_mb_max']} MB", flush=True)
        if g["unmeasured"]:
            print(f"not projected (no job kind measured for these student inputs): {g['unmeasured']}", flush=True)
        print(f"rehearsal wall time: {time.perf_counter() - t_start:.0f} s", flush=True)
        return {"jobs": rows, "grid": g}
    finally:
        if not keep and not workdir:
            shutil.rmtree(tmp, ignore_errors=True)


def _student_modalities(cfg, ds, track, method):
    c = _bench_cfg(cfg, "deap" if ds == "deap" else "seed_iv")
    return sorted(run_spec(c, "bench", track, "arousal" if ds == "deap" else "emotion", method, 0)["modalities"])


def _bench_cfg(cfg: dict, like: str) -> dict:
    """The paper config with a data set ``bench`` that stands for ``like``."""
    c = copy.deepcopy(cfg)
    c["datasets"]["bench"] = copy.deepcopy(c["datasets"][like])
    # time and memory do not depend on the weights' values: random initialisation, so that the
    # rehearsal needs no hub download (the paper grid's visual encoder asks for ImageNet weights)
    for enc in (c.get("encoders") or {}).values():
        if isinstance(enc, dict) and enc.get("pretrained"):
            enc.update(pretrained=False, allow_random_init=True)
    face = (c.get("encoders") or {}).get("face")
    if isinstance(face, dict) and face.get("frozen"):
        # the calibration of cmkd.resources (SAMPLE_S, MEASURED) is the fine-tuned pvt_v2_b0 student's, the
        # expensive path; the frozen features' costs are derived from it (cmkd.resources.FROZEN_EXTRACT_FACTOR)
        face.update(arch="pvt_v2_b0", frozen=False, hint_stage=2)
    return c


def _job_main(arg: str) -> None:
    a = json.loads(arg)
    cfg = paper_config()
    like = "seed_iv" if a["track"] == "eye-to-eeg_de" else "deap"
    cfg = _bench_cfg(cfg, like)
    cfg["threads"] = int(os.environ.get("CMKD_BENCH_THREADS", "2"))
    r = run_job(cfg, a["prepared"], a["track"], a["dimension"], a["method"], int(a["batch_size"]), int(a["steps"]),
                a.get("device", "auto"), a.get("autocast", "off"))
    print(json.dumps(r))




# ----------------------------------------------------------------------------- project loop vs plain AMP loop
def plain_amp_loop(cfg: dict, prepared: str, track: str, dimension: str, method: str, batch_size: int,
                   steps: int, device: str, autocast: str) -> dict:
    """The reference: the same student network and data, in a minimal PyTorch loop (inputs
    standardised once and held in pinned memory, ``torch.autocast`` + ``GradScaler`` for fp16,
    cross-entropy, Adam); time per sample after one warm-up step, peak GPU memory."""
    spec = run_spec(cfg, "bench", track, dimension, method, 0)
    dev = train.setup_torch(spec["threads"], 0, device)
    prep = load_prepared(prepared)
    mods = list(spec["modalities"])
    n = min(prep.n, batch_size * (steps + 1))
    y = labels.targets(prep, dimension, "classification", 5.0)[:n]
    xs = {}
    for m in mods:
        a = np.asarray(prep[m][:n])
        if m != "face":
            a = ((a - a.mean(axis=(0, 2), keepdims=True)) / (a.std(axis=(0, 2), keepdims=True) + 1e-6)).astype(np.float32)
        t = torch.from_numpy(np.ascontiguousarray(a))
        xs[m] = t.pin_memory() if dev.type == "cuda" else t
    yt = torch.from_numpy(y.astype(np.int64))
    torch.manual_seed(0)
    model = build_model({"architecture": spec.get("architecture"), "model": spec.get("model") or {},
                         "modalities": mods, "encoders": spec["encoders"],
                         "inputs": train.model_inputs(prep, mods), "head": spec["head"], "n_outputs": 2}).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(autocast) if dev.type == "cuda" else None
    scaler = torch.amp.GradScaler("cuda") if dtype is torch.float16 else None
    model.train()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = None
    for i in range(steps + 1):
        if i == 1:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        sl = slice(i * batch_size, (i + 1) * batch_size)
        b = {m: x[sl].to(dev, non_blocking=True) for m, x in xs.items()}
        yy = yt[sl].to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(b).logits.float(), yy)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    out = {"sample_s": dt / (steps * batch_size), "batch_size": batch_size, "device": str(dev),
           "autocast": autocast if dtype is not None else "off"}
    if dev.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def throughput_compare(prepared: str, batch_size: int, steps: int, device: str = "auto",
                       autocasts=("off", "bf16"), method: str = "baseline") -> list[dict]:
    """Samples/s of the project's path (:func:`run_job`: streamed or in-memory parts, background
    batches, the method's training step) vs :func:`plain_amp_loop`, per autocast setting."""
    cfg = _bench_cfg(paper_config(), "deap")
    cfg["threads"] = int(os.environ.get("CMKD_BENCH_THREADS", "2"))
    rows = []
    for ac in autocasts:
        p = run_job(cfg, prepared, "face_eeg-to-face", "arousal", method, batch_size, steps, device, ac)
        q = plain_amp_loop(cfg, prepared, "face_eeg-to-face", "arousal", method, batch_size, steps, device, ac)
        rows.append({"autocast": p["autocast"], "project_samples_per_s": 1 / p["sample_s"],
                     "plain_samples_per_s": 1 / q["sample_s"], "ratio": q["sample_s"] / p["sample_s"],
                     "peak_gpu_mb": p.get("peak_gpu_mb"), "plain_peak_gpu_mb": q.get("peak_gpu_mb"),
                     "peak_host_rss_mb": p.get("peak_rss_mb"),  # the process peak (it wrote the small set first): bounds a GPU job's host memory, resources.CUDA_HOST_MB
                     "data_access": p["data_access"], "device": p["device"]})
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--job":
        _job_main(sys.argv[2])
