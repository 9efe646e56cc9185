"""The bad-input catalogue, shared by tests/test_bad_input.py (through `cmkd check` and the command
line), tests/test_bad_input_dryrun.py (a representative subset through `snakemake -n`) and
scripts/bad_input_catalogue.py (every workflow input through both).

CONFIG_CASES and DRYRUN_EXTRA are inputs a workflow can be given (config overlays, data roots,
prepared data, the environment): (name, overlay or function of a folder -> overlay, text the first
error line must contain). CLI_CASES are arguments of the other subcommands: (argv, exit code, text).
"""
from __future__ import annotations

import json

import numpy as np

from cmkd.devices import torch_build

TRACE = "Traceback (most recent call last)"

#: Snakemake's own lines before the project's error
BANNER = ("Config file ", "WorkflowError", "Building DAG", "Assuming unrestricted", "host:", "Using shell",
          "Provided cores", "Rules claiming", "Select jobs")


def first_line(out: str) -> str:
    """The first line of the output that is not Snakemake's own banner."""
    return next((ln for ln in out.splitlines() if ln.strip() and not ln.startswith(BANNER)), "")


def one_experiment(dataset="synthetic", track="face_eeg-to-face", methods=("baseline",), dims=("arousal",)):
    return {"experiments": [{"dataset": dataset, "track": track, "dimensions": list(dims), "methods": list(methods)}],
            "tables": []}


def real_deap(tmp_path, root, **extra):
    """A DEAP data set on the EEG+EOG track (no visual weights needed)."""
    ds = {"loader": "deap", "modalities": ["eeg", "eog"], "root": str(root), **extra}
    return {"datasets": {"deap": ds}, **one_experiment("deap", "eeg_eog-to-eog", ("baseline_eog",))}


def empty_dir(tmp_path):
    d = tmp_path / "empty_raw"
    d.mkdir(exist_ok=True)
    return d


def full_dir(tmp_path):
    d = tmp_path / "raw"
    d.mkdir(exist_ok=True)
    (d / "s01.dat").write_bytes(b"x")
    return d


# (id, overlay or function of tmp_path -> overlay, text the first error line must contain)
CONFIG_CASES = [
    # --- schema: one short line per error, with the file and line of the offending key
    ("top_level_typo", {"resultz": "x"}, "resultz: unknown key"),
    ("dataset_key_typo", {"datasets": {"synthetic": {"parms": {}}}}, "datasets.synthetic.parms: unknown key"),
    ("threads_zero", {"threads": 0}, "threads: must be >= 1"),
    ("threads_string", {"threads": "two"}, "threads: must be of type integer"),
    ("seeds_empty", {"seeds": []}, "seeds"),
    ("seed_negative", {"seeds": [-1]}, "seeds[0]"),
    ("device_gpu", {"device": "gpu"}, "device: must be one of"),
    ("lr_negative", {"training": {"lr": -1}}, "training.lr: must be > 0"),
    ("batch_size_one", {"training": {"batch_size": 1}}, "training.batch_size"),
    ("optimizer_sgd", {"training": {"optimizer": "sgd"}}, "training.optimizer"),
    ("max_epochs_zero", {"training": {"max_epochs": 0}}, "training.max_epochs"),
    ("training_typo", {"training": {"learning_rate": 0.1}}, "training.learning_rate: unknown key"),
    ("select_on_f1", {"training": {"select_on": "f1"}}, "training.select_on"),
    ("split_kind_random", {"split": {"kind": "random"}}, "split.kind"),
    ("split_two_ratios", {"split": {"ratios": [0.8, 0.2]}}, "split.ratios"),
    ("val_fraction_big", {"split": {"val_fraction": 1.5}}, "split.val_fraction"),
    ("split_models_bogus", {"split": {"models": "per_trial"}}, "split.models: must be one of"),
    ("split_models_on_kfold", {"split": {"models": "per_subject"}}, "split.models: 'per_subject'"),
    ("face_frozen_string", {"encoders": {"face": {"frozen": "yes"}}}, "encoders.face.frozen: must be of type boolean"),
    ("face_frozen_with_hint", {"encoders": {"face": {"frozen": True, "hint_stage": 2}}}, "encoders.face.hint_stage"),
    ("feedback_fraction_zero", {"split": {"feedback_fraction": 0}}, "split.feedback_fraction"),
    ("threshold_12", {"dimensions": {"arousal": {"task": "classification", "threshold": 12}}},
     "dimensions.arousal.threshold: must be <= 9"),
    ("task_typo", {"dimensions": {"arousal": {"task": "classify"}}}, "dimensions.arousal.task"),
    ("tie_middle", {"dimensions": {"arousal": {"task": "classification", "tie": "middle"}}}, "dimensions.arousal.tie"),
    ("resources_typo", {"methods": {"kd": {"resources": {"mem": 100}}}}, "methods.kd.resources.mem: unknown key"),
    ("resources_negative", {"methods": {"kd": {"resources": {"mem_mb": -5}}}}, "methods.kd.resources.mem_mb"),
    ("method_key_typo", {"methods": {"kd": {"parms": {}}}}, "methods.kd.parms: unknown key"),
    ("head_typo", {"head": {"hiden": 3}}, "head.hiden: unknown key"),
    ("on_failure_ignore", {"on_failure": "ignore"}, "on_failure"),
    ("seeds_per_job_two", {"seeds_per_job": 2}, "seeds_per_job"),
    ("experiment_key_typo", {"experiments": [{"dataset": "synthetic", "track": "face_eeg-to-face",
                                              "dimensions": ["arousal"], "methods": ["baseline"], "seed": 1}],
                             "tables": []}, "experiments[0].seed: unknown key"),
    ("table_metric_typo", {"tables": [{"name": "x", "metric": "acc", "rows": {"baseline": None}}]}, "tables[0].metric"),
    # --- semantics
    ("loader_unknown", {"datasets": {"synthetic": {"loader": "deep"}}}, "datasets.synthetic.loader"),
    ("modality_unknown", {"datasets": {"synthetic": {"modalities": ["eeg", "eog", "face", "eye", "brain"]}}},
     "datasets.synthetic.modalities"),
    ("synthetic_param_typo", {"datasets": {"synthetic": {"params": {"n_subject": 3}}}}, "datasets.synthetic.params.n_subject"),
    ("zero_segments", {"datasets": {"synthetic": {"params": {"segments_per_trial": 0}}}},
     "datasets.synthetic.params.segments_per_trial"),
    ("face_too_small", {"datasets": {"synthetic": {"params": {"face_size": 8}}}}, "datasets.synthetic.params.face_size"),
    # face size vs the visual architecture (cmkd.models.visual_sizes, no torch)
    ("face_too_small_for_arch", {"datasets": {"synthetic": {"params": {"face_size": 24}}}},
     "datasets.synthetic.params.face_size: 24 px faces of data set 'synthetic' do not fit encoders.face.arch 'test_convnext3'"),
    ("face_not_a_patch_multiple", {"encoders": {"face": {"arch": "test_vit"}},
                                   "datasets": {"synthetic": {"params": {"face_size": 40}}}},
     "datasets.synthetic.params.face_size: 40 px faces of data set 'synthetic' do not fit encoders.face.arch 'test_vit'"),
    ("img_size_too_small_for_pvt", {"encoders": {"face": {"arch": "pvt_v2_b0", "img_size": 20}}},
     "encoders.face.img_size: 20 px faces of data set 'synthetic' do not fit encoders.face.arch 'pvt_v2_b0'"),
    ("method_arch_too_big_for_face", {"datasets": {"synthetic": {"params": {"face_size": 28}}},
                                      "encoders": {"face": {"arch": "resnet18"}},
                                      "methods": {"baseline": {"encoders": {"face": {"arch": "pvt_v2_b0"}}}}},
     "datasets.synthetic.params.face_size: 28 px faces of data set 'synthetic' do not fit methods.baseline.encoders.face.arch"),
    ("label_noise_two", {"datasets": {"synthetic": {"params": {"label_noise": 2}}}}, "datasets.synthetic.params.label_noise"),
    ("encoder_name_typo", {"encoders": {"eeg": {"name": "tsceptin"}}}, "encoders.eeg.name: unknown encoder"),
    ("encoder_key_typo", {"encoders": {"eeg": {"numT": 3}}}, "encoders.eeg.numT: unknown key"),
    ("method_encoder_typo", {"methods": {"baseline": {"encoders": {"face": {"img_sise": 32}}}}},
     "methods.baseline.encoders.face.img_sise"),
    ("architecture_unknown", {"methods": {"cnn_svm": {"architecture": "cnn_svn"}}}, "methods.cnn_svm.architecture"),
    ("method_class_unknown", {"methods": {"kd": {"class": "KDD"}}}, "methods.kd.class"),
    ("method_param_typo", {"methods": {"kd": {"params": {"temperatur": 4}}}}, "methods.kd.params.temperatur"),
    ("requires_unknown", {"methods": {"kd": {"requires": {"teacher": "nobody"}}}}, "methods.kd.requires.teacher"),
    ("ratios_sum", {"split": {"kind": "trial", "ratios": [0.5, 0.3, 0.3]}}, "split.ratios"),
    ("ratios_sum_method", {"methods": {"baseline_trial": {"split": {"kind": "trial", "ratios": [0.9, 0.3, 0.1]}}}},
     "methods.baseline_trial.split.ratios"),
    ("more_folds_than_trials", {"split": {"n_folds": 500}}, "split"),
    ("loso_one_subject", {"datasets": {"synthetic": {"params": {"n_subjects": 1}}}}, "methods.baseline_loso.split"),
    ("threshold_one_class", {"dimensions": {"arousal": {"task": "classification", "threshold": 9}}},
     "dimensions.arousal.threshold"),
    ("threshold_one_class_tie", {"dimensions": {"valence": {"task": "classification", "threshold": 1, "tie": "high"}}},
     "dimensions.valence.threshold"),
    ("n_classes_three", {"dimensions": {"arousal": {"task": "classification", "n_classes": 3}}},
     "dimensions.arousal.n_classes"),
    ("dimension_target_typo", {"dimensions": {"valence_reg": {"task": "regression", "target": "valense"}}},
     "dimensions.valence_reg.target"),
    ("track_split_typo", {"tracks": {"face_eeg-to-face": {"split": {"ratio": [0.8, 0.1, 0.1]}}}},
     "tracks.face_eeg-to-face.split.ratio"),
    ("method_split_kind", {"methods": {"baseline_loso": {"split": {"kind": "bogus"}}}}, "methods.baseline_loso.split.kind"),
    ("experiment_dataset", {**one_experiment("nosuch")}, "experiments[0].dataset"),
    ("experiment_track", {**one_experiment(track="nosuch")}, "experiments[0].track"),
    ("experiment_dimension", {**one_experiment(dims=("happiness",))}, "experiments[0].dimensions"),
    ("experiment_method", {**one_experiment(methods=("nosuch",))}, "experiments[0].methods"),
    ("trivial_not_trivial", {"trivial_methods": ["kd"]}, "trivial_methods[0]"),
    ("group_circular", {"method_groups": {"a": ["b"], "b": ["a"]}, **one_experiment(methods=("a",))}, "method_groups"),
    ("table_row_unknown", {"tables": [{"name": "x", "rows": {"nosuch": None}}]}, "tables.x.rows"),
    # --- raw data
    ("root_missing", lambda t: real_deap(t, t / "nowhere"), "datasets.deap.root"),
    ("root_empty", lambda t: real_deap(t, empty_dir(t)), "datasets.deap.root"),
    ("root_not_set", lambda t: {"datasets": {"deap": {"loader": "deap", "modalities": ["eeg", "eog"]}},
                                **one_experiment("deap", "eeg_eog-to-eog", ("baseline_eog",))}, "datasets.deap.root"),
    ("real_param_typo", lambda t: real_deap(t, full_dir(t), params={"segment_secs": 4}), "datasets.deap.params.segment_secs"),
    ("not_recorded", lambda t: {"datasets": {"mahnob": {"loader": "mahnob_hci", "modalities": ["eeg", "eog"],
                                                        "root": str(full_dir(t))}},
                                **one_experiment("mahnob", "eeg_eog-to-eog", ("baseline_eog",))},
     "datasets.mahnob.modalities"),
]


def prepared_one_class(tmp):
    """A prepared DEAP folder whose arousal ratings are all high: only its meta.json tells."""
    prep = tmp / "results" / "prepared" / "deap"
    prep.mkdir(parents=True)
    n = 60
    arrays = {"subject": np.repeat(np.arange(5), 12), "trial": np.tile(np.repeat(np.arange(4), 3), 5),
              "arousal": np.full(n, 7.0, np.float32), "valence": np.linspace(1, 9, n).astype(np.float32)}
    for k, v in arrays.items():
        np.save(prep / f"{k}.npy", v)
    (prep / "meta.json").write_text(json.dumps({
        "dataset": "deap", "n_segments": n, "content_hash": "test",
        "arrays": {k: {"shape": list(v.shape), "dtype": v.dtype.str} for k, v in arrays.items()}}))
    return real_deap(tmp, full_dir(tmp))


#: workflow inputs of their own: prepared data, and the environment (the installed torch build;
#: this one applies only where torch is a CPU-only build, see cuda_applies)
DRYRUN_EXTRA = [
    ("device_cuda_on_cpu_torch", {"device": "cuda"}, "device: 'cuda' asked for, but the installed torch is a CPU-only build"),
    ("prepared_one_class", prepared_one_class, "dimensions.arousal.threshold"),
]


def applies(name: str) -> bool:
    """Whether a case can be stopped on this machine (cuda on a CUDA build is a valid config)."""
    if name != "device_cuda_on_cpu_torch":
        return True
    return torch_build()["kind"] == "cpu"


#: arguments of the other subcommands (not workflow inputs): (argv, exit code, text of the error)
CLI_CASES = [
    (["prepare", "synthetic", "--out", "{tmp}/p", "--seed", "abc"], 2, "argument --seed"),
    (["prepare", "synthetic", "--out", "{tmp}/p", "--seed", "-3"], 2, "argument --seed"),
    (["prepare", "synthetic", "--out", "{tmp}/p", "--params", "@{tmp}/missing.json"], 2, "missing.json"),
    (["prepare", "synthetic", "--out", "{tmp}/p", "--params", "{bad"], 2, "argument --params"),
    (["prepare", "synthetic", "--out", "{tmp}/p", "--params", "@{tmp}/bad.json"], 2, "bad.json:1"),
    (["prepare", "synthetic", "--out", "{tmp}/p", "--params", "@{tmp}/bad.yaml"], 2, "bad.yaml:2"),
    (["prepare", "nosuch", "--out", "{tmp}/p"], 2, "unknown data set loader 'nosuch'"),
    (["prepare", "deap", "--out", "{tmp}/p"], 2, "--root"),
    (["prepare", "synthetic", "--out", "{tmp}/p", "--params", '{"n_subject": 2}'], 2, "n_subject"),
    (["inspect", "deap", "--root", "{tmp}", "--threshold", "abc"], 2, "argument --threshold"),
    (["inspect", "deap", "--root", "{tmp}", "--threshold", "nan"], 2, "argument --threshold"),
    (["inspect", "deap", "--root", "{tmp}", "--tie", "middle"], 2, "--tie: must be one of"),
    (["inspect", "deap", "--root", "{tmp}", "--params", "[1"], 2, "argument --params"),
    (["train", "--spec", "@{tmp}/missing.json", "--out", "{tmp}/r"], 2, "missing.json"),
    (["train", "--specs", "{\"a\": 1}"], 2, "train --specs"),
    (["train"], 2, "train: give --specs"),
    (["frame-features", "--prepared", "{tmp}/results/prepared/x", "--encoder", '{"name": "timm", "arch": "test_vit"}',
      "--out", "{tmp}/o"], 2, "is not a frozen timm encoder"),
    (["frame-features", "--prepared", "{tmp}/results/prepared/x", "--encoder",
      '{"name": "timm", "arch": "test_vit", "frozen": true}', "--out", "{tmp}/o"], 2, "is not the cache folder"),
    (["aggregate", "--metrics-list", "{tmp}/missing.txt", "--out", "{tmp}/runs.csv"], 2, "missing.txt"),
    (["aggregate", "{tmp}/missing/metrics.json", "--out", "{tmp}/runs.csv"], 2, "metrics.json"),
    (["tables", "--runs", "{tmp}/runs.csv", "--spec", "{x", "--out-dir", "{tmp}/t"], 2, "argument --spec"),
    (["cell", "synthetic", "face_eeg-to-face", "arousal", "kd", "--cores", "many"], 2, "argument --cores"),
    (["bench", "--device", "tpu"], 2, "argument --device"),
    (["bench", "--scale", "paper", "--face-segments", "0"], 2, "argument --face-segments"),
    (["check", "--configfile", "{tmp}/missing.yaml"], 2, "missing.yaml"),
    (["plots", "features", "--out-dir", "{tmp}", "--seed", "abc"], 2, "argument --seed"),
    (["plots", "nosuch"], 2, "invalid choice"),
    (["stats", "--runs", "r", "--out", "o", "--references", "{}", "--test-fraction", "abc"], 2, "--test-fraction"),
    (["stats", "--runs", "{tmp}/r.csv", "--out", "{tmp}/o.csv", "--references", "{bad"], 2, "references"),
    (["nosuch"], 2, "invalid choice"),
]
