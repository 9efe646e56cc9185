"""The SEED family's evaluation protocols as ``split.kind`` values: chronological and cross-session.

Both are built per subject (subject-dependent protocols) from the arrays the SEED-family loaders
write: ``session`` (1-3) and ``trial = 100 * session + position`` with ``position`` the clip's
place in the session's presentation order (0-based).

- ``chronological``: in every (subject, session), the first ``train_trials`` clips train and the
  rest test, the data sets' official subject-dependent split (SEED: first 9 of 15 clips train,
  last 6 test; SEED-IV: first 16 of 24, last 8; SEED-V's three-fold protocol of 5 clips per fold
  has its last fold at ``train_trials: 10``).
- ``cross_session``: every subject's ``test_session`` tests and its other sessions train.

The published protocols have no validation part; the training loop needs one for early stopping
and model selection, and it must be able to measure the task: the clip orders put the same
emotions last in every session (SEED's ninth clip is "positive" in all three sessions), so the
last training clips of a session would validate on one or two classes. The rule (parameter
``val_trials``, default 1): for every subject, ``val_trials`` clips of every class are drawn from
the subject's training clips of that class, across all its training sessions, with a generator
seeded by ``(run seed, subject)`` (so a subject's draw does not depend on the others); a class
keeps at least one training clip (a class with one training clip keeps it, and the split is
refused by :func:`cmkd.data.splits.check_val_classes`). Without labels (``stratify: false``) the
clips form one stratum. Validation never looks at a test clip; in the chronological protocol
training and validation clips all come before the test clips of their session.

The test part is not random: the official protocol fixes it; the run seed draws the validation
clips, the initialisation and the batch order. The split is checked by
:func:`check_protocol_split` (the shared trial-level overlap check, plus: no session of a
cross-session test in train or validation; in a chronological split no training or validation
clip after a test clip of its session).
Per-subject test results are recorded by :func:`per_subject_scores`.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from cmkd.data import family, split_kinds
from cmkd.data.splits import PARTS, _as_1d_int, _group_classes, check_split
from cmkd.errors import ConfigError, DataError

#: the protocol splits made here, and those whose results are reported per subject (their
#: declarations: :mod:`cmkd.data.split_kinds`, family ``protocol``)
PROTOCOL_KINDS = split_kinds.kinds(family="protocol")
PER_SUBJECT_KINDS = split_kinds.per_subject_kinds()
TRIAL_STRIDE = 100


def _int_param(protocol: Mapping, key: str, kind: str, minimum: int) -> int:
    decl = split_kinds.SPLIT_KINDS[kind].params[key]
    v = protocol.get(key, decl.default)
    if v is None:
        raise ConfigError(f"split.{key}: required for split.kind '{kind}' "
                          f"(SEED: 9, SEED-IV: 16, SEED-V: 10 of 15 for its last fold)")
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ConfigError(f"split.{key}: must be an integer >= {minimum}, got {v!r}")
    return int(v)


def positions(session: np.ndarray, trial: np.ndarray) -> np.ndarray:
    """Each segment's clip position in its session, from ``trial = 100 * session + position``."""
    pos = trial - TRIAL_STRIDE * session
    bad = np.nonzero((pos < 0) | (pos >= TRIAL_STRIDE))[0]
    if bad.size:
        i = int(bad[0])
        raise DataError(f"split: trial id {int(trial[i])} of session {int(session[i])} is not "
                        f"{TRIAL_STRIDE} * session + position; the protocol splits need a SEED-family data set")
    return pos


def _draw_val(pos_clips: np.ndarray, clip_class: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Validation clips among one subject's training clips: ``n`` of every class (at most all
    but one of the class's clips), drawn with ``rng``."""
    out = []
    for c in np.unique(clip_class):
        members = pos_clips[clip_class == c]
        k = min(n, members.shape[0] - 1)
        if k > 0:
            out.append(members[rng.permutation(members.shape[0])[:k]])
    return np.concatenate(out) if out else np.zeros((0,), np.int64)


def protocol_split(kind: str, subject, trial, session, protocol: Mapping | None = None, seed: int = 0,
                   labels=None) -> dict[str, np.ndarray]:
    """``{"train", "val", "test"}`` -> sorted segment indices for ``kind`` in :data:`PROTOCOL_KINDS`.
    ``labels``: per-segment classes that stratify the validation draw (constant within a clip);
    ``seed``: the run seed that draws the validation clips (module docstring)."""
    protocol = dict(protocol or {})
    if kind not in PROTOCOL_KINDS:
        raise ConfigError(f"split.kind: {kind!r} is not a protocol split ({list(PROTOCOL_KINDS)})")
    if session is None:
        raise DataError(f"split.kind '{kind}': the prepared data have no array 'session'; "
                        f"this protocol needs a SEED-family data set ({', '.join(family('seed'))})")
    subject = _as_1d_int(subject, "subject")
    trial = _as_1d_int(trial, "trial")
    session = _as_1d_int(session, "session")
    if not (subject.shape == trial.shape == session.shape):
        raise DataError(f"split: arrays 'subject', 'trial' and 'session' differ in length "
                        f"({subject.shape[0]}, {trial.shape[0]}, {session.shape[0]})")
    if subject.size == 0:
        raise DataError("split: no segments to split")
    pos = positions(session, trial)
    val_n = _int_param(protocol, "val_trials", kind, 1)
    part = np.full(subject.shape[0], -1, dtype=np.int64)
    if kind == "chronological":
        n_train = _int_param(protocol, "train_trials", kind, 1)
        part[pos < n_train] = 0
        part[pos >= n_train] = 2
        if not (part == 2).any():
            raise DataError(f"split: no clip at position >= train_trials ({n_train}); the test part would be empty")
    else:
        test_s = _int_param(protocol, "test_session", kind, 1)
        if test_s not in set(session.tolist()):
            raise DataError(f"split.test_session: session {test_s} is not in the data (sessions {sorted(set(session.tolist()))})")
        part[session == test_s] = 2
        part[session != test_s] = 0
        if not (part == 0).any():
            raise DataError("split: every segment is in the test session; nothing to train on")
    # validation: val_trials clips of every class per subject, drawn across its training sessions
    keys = np.stack([subject, trial], axis=1)
    clips, clip_of = np.unique(keys, axis=0, return_inverse=True)
    clip_of = np.asarray(clip_of).reshape(-1)
    clip_class = _group_classes(clip_of, clips.shape[0], labels, subject, trial)
    clip_train = np.zeros(clips.shape[0], bool)
    clip_train[clip_of[part == 0]] = True
    for s in np.unique(clips[clip_train, 0]):
        mine = np.nonzero(clip_train & (clips[:, 0] == s))[0]
        rng = np.random.default_rng([int(seed), int(s)])
        val_clips = _draw_val(mine, clip_class[mine], val_n, rng)
        part[np.isin(clip_of, val_clips)] = 1
    split = {name: np.nonzero(part == i)[0].astype(np.int64) for i, name in enumerate(PARTS)}
    check_protocol_split(kind, split, subject, trial, session)
    return split


def check_protocol_split(kind: str, split: Mapping[str, np.ndarray], subject, trial, session) -> None:
    """The shared trial-level overlap check, then the protocol's own: for ``cross_session`` no
    subject's session in the test part and in train or validation; for ``chronological`` every
    training and validation clip of a session comes before its test clips."""
    check_split(split, subject, trial, kind)
    subject, trial, session = (np.asarray(a, np.int64) for a in (subject, trial, session))
    owner = np.full(subject.shape[0], -1, dtype=np.int64)
    for i, p in enumerate(PARTS):
        owner[np.asarray(split[p], np.int64)] = i
    on = owner >= 0
    if kind == "cross_session":
        triples = np.unique(np.stack([subject[on], session[on], owner[on] == 2], axis=1), axis=0)
        ss, counts = np.unique(triples[:, :2], axis=0, return_counts=True)
        if (counts > 1).any():
            s, se = ss[counts > 1][0]
            raise DataError(f"split: subject {int(s)} session {int(se)} is in the test part and in train/val; "
                            "a cross-session split must keep every session in one side")
    else:
        pos = positions(session, trial)
        keys = np.stack([subject, session], axis=1)
        for s, se in np.unique(keys[on], axis=0):
            m = on & (subject == s) & (session == se)
            tested_in_order = (owner[m] == 2)[np.argsort(pos[m], kind="stable")].astype(np.int64)
            if (np.diff(tested_in_order) < 0).any():
                raise DataError(f"split: subject {int(s)} session {int(se)}: a later clip trains or validates before "
                                "an earlier one is tested; a chronological split must keep the clip order")


def per_subject_scores(subject: np.ndarray, y_true: np.ndarray, logits: np.ndarray) -> dict:
    """Test accuracy (%) and window count per subject, and their mean and standard deviation over
    subjects (the way subject-dependent results are reported)."""
    subject = np.asarray(subject)
    pred = np.asarray(logits).argmax(axis=1)
    y_true = np.asarray(y_true)
    per = {}
    for s in np.unique(subject):
        m = subject == s
        per[str(int(s))] = {"accuracy": float(100.0 * (pred[m] == y_true[m]).mean()), "n": int(m.sum())}
    acc = np.array([v["accuracy"] for v in per.values()])
    return {"subjects": per, "mean_accuracy": float(acc.mean()) if acc.size else float("nan"),
            "std_accuracy": float(acc.std(ddof=1)) if acc.size > 1 else float("nan")}
