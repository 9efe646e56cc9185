"""Parameter groups that several methods share, named in a method's ``REGISTER`` entry
(``"extends": ["zoo", "teacher_feature"]``). Torch-free, in the literal form of ``REGISTER``
parameters (see :mod:`cmkd.methods`); an entry may also extend another method by its name
(``cmcrd`` extends ``crd``).
"""
from __future__ import annotations

# Hinton's temperature as the classic KD zoo uses it (RepDistiller --kd_T 4)
TEMPERATURE = {"temperature": {"default": 4.0, "lo": 0.0, "lo_open": True}}
# RepDistiller's objective gamma * CE + alpha * KD + beta * L_feature (cmkd.methods.zoo_common)
ZOO = {"gamma": {"default": 1.0, "lo": 0.0}, "alpha": {"default": 0.0, "lo": 0.0}, **TEMPERATURE}
# the teacher's feature a feature-based method reads (null: the student's feature name)
TEACHER_FEATURE = {"teacher_feature": {"default": None, "kind": "str", "nullable": True}}

GROUPS: dict[str, dict] = {
    "temperature": TEMPERATURE,
    "zoo": ZOO,
    "teacher_feature": TEACHER_FEATURE,
    # the relational methods (cmkd.methods.zoo_common.RelationalMethod: SP, RKD, PKT): the zoo
    # objective on the penultimate vector (or the flattened hint)
    "relational": {**ZOO, "feature": {"default": "embedding", "kind": "choice", "choices": ["embedding", "hint"]},
                   **TEACHER_FEATURE},
    # the dynamic feedback phase of MKD and EmotionKD (cmkd.methods.mkd_feedback)
    "feedback": {
        "feedback": {"default": True, "kind": "bool"},
        "feedback_every": {"default": 5, "kind": "int", "lo": 1},
        "feedback_steps": {"default": 1, "kind": "int", "lo": 1},
        "teacher_lr": {"default": 1.0e-4, "lo": 0.0, "lo_open": True},
        "lambda_t": {"default": 1.0, "lo": 0.0},
        # the temporary student's step alpha (MKD §3.3.2): 1e-2 makes the student-driven part of the
        # teacher's gradient a measurable share of its own (history.csv feedback_ratio); null: the
        # student optimiser's learning rate (the behaviour before, 1e-4 in the paper grid: ratio ~0.003)
        "temp_lr": {"default": 1.0e-2, "lo": 0.0, "lo_open": True, "nullable": True,
                    "doc": "step of the temporary student; null: the student's learning rate"},
        # false: the control "teacher fine-tuned, no student feedback": the same teacher steps on the
        # same held-out batches with its own CE only (no temporary student)
        "student_signal": {"default": True, "kind": "bool",
                           "doc": "false: the teacher's feedback step without the temporary student's term (fine-tuning control)"},
    },
}

# ----------------------------------------------------------------------------- search spaces (tuning)
# Ranges of the equal-budget hyperparameter search (cmkd.tuning, docs/tuning.md) that several methods
# share, named in a REGISTER entry's "search" by their key ("search": {"temperature": "temperature"}).
# "lr" is searched for every tuned method with the same range (not named per method): Adam's step
# from 1e-4 (config/paper.yaml's training.lr, the CDGKD/MKD papers' value) to 1e-2, log-uniform;
# the default's 1e-3 lies inside. The temperature: 1 (CDGKD, MKD) to 8 (Hinton et al. 2015 §3 try
# 1-20; RepDistiller's 4 and AMBOKD's 3 lie inside).
SEARCH_RANGES: dict[str, dict] = {
    "lr": {"lo": 1.0e-4, "hi": 1.0e-2, "log": True},
    "temperature": {"lo": 1.0, "hi": 8.0, "log": False},
    # a loss weight around 1 (a term on the scale of the cross-entropy): 0.1x to 10x, log-uniform
    "weight": {"lo": 0.1, "hi": 10.0, "log": True},
    # a convex mixing weight (alpha of (1 - alpha) CE + alpha KD)
    "mix": {"lo": 0.1, "hi": 0.9, "log": False},
}
