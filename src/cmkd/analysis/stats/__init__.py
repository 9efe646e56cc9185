"""Statistics of the benchmark: paired tests per cell, Friedman/Nemenyi across cells.

Input is the run table ``results/summary/runs.csv``: one row per run with the columns
``dataset, track, dimension, method, seed, accuracy, f1, rmse, status``. Only runs with
``status == "ok"`` enter a test; every other run (``"failed"``) is excluded but counted
(column ``n_failed`` of :func:`paired_tests`, ``n_failed`` of :func:`friedman_nemenyi`).

Paired tests (:func:`paired_tests`)
    Within one ``dataset x track x dimension`` cell, every method is compared with every
    reference method of that cell.

    * ``method_level`` -- the headline: is the method better than the reference? Its units are
      the training runs (seed x fold, both methods on the same split) and, for accuracy, their
      test trials; its null holds run-to-run and trial-to-trial variance
      (:func:`method_level_test`: moments of the crossed random-effects model, Welch-Satterthwaite
      df). Calibrated by simulation in the test suite (family-wise error after Holm, power at its
      MDE).

    Seed-level tests pair runs by seed (inner join on ``seed``) and answer the
    training-variability question (would another training run give the same difference?):

    * ``paired_t``    -- :func:`scipy.stats.ttest_rel` over seeds; the test of a fixed split
      (:data:`FIXED_SPLIT_KINDS`, or one split hash for every seed: no resampling, so no
      correction applies);
    * ``corrected_t`` -- resampled holdout splits: the corrected resampled t-test of Nadeau &
      Bengio (2003, Machine Learning 52:239-281): ``t = mean(d) / sqrt((1/n + n_test/n_train) *
      var(d, ddof=1))``, ``df = n - 1``, over the seeds whose method and reference runs share the
      split (equal split hash); ``n_test/n_train`` per cell from the splits that ran, with
      ``n_train`` = all non-test data (training + validation part); from the config's test
      fraction only for runs that recorded no split;
    * ``corrected_kfold_t`` -- cross-validated runs (``split.kind`` kfold/loso): the corrected
      repeated k-fold t-test of Bouckaert & Frank (2004, PAKDD, LNCS 3056:3-12), the same
      formula over the ``r x k`` (seed, fold) differences of the folds that ran the same split
      (equal split hash per fold: a fold number alone pairs nothing), ``n_test/n_train`` from
      those folds' segment counts (``1/(k-1)``), ``df = r k - 1``; it replaces ``corrected_t``
      there;
    * ``wilcoxon``    -- :func:`scipy.stats.wilcoxon` over seeds, two-sided.

    The trial-level test answers whether these trained models differ on these test trials
    (``trial_permutation``): it pairs the two methods' predictions on the test segments both saw
    in the same seed (``features.npz``), averages the difference in correctness per trial
    (segments pooled over seeds) and runs a paired sign-flip permutation test over trials
    (:func:`sign_flip_test`); its CI is a percentile bootstrap over trials. Run-to-run variance
    is not in its null: it is never the headline. Accuracy only.

    A test that cannot reach alpha at its n is not run and has no row: :func:`smallest_p`
    gives the smallest p a test can return (Wilcoxon with 3 seeds: 0.25), and Tarone's family
    size (:func:`tarone_size`) keeps only comparisons that can reach ``alpha/K``. ``mde`` is the
    minimum detectable difference at ``alpha_family`` with 80 % power
    (:func:`minimum_detectable_difference`, statsmodels' ``TTestPower``; for the method-level
    test :func:`detectable_difference` of its standard error and df).

    ``effect`` is the mean paired difference ``method - reference`` (so for ``rmse`` a
    negative effect means the method is better); ``ci_low``/``ci_high`` is its 95 % CI (t
    distribution, corrected standard error on the corrected rows). ``dz`` is Cohen's d_z.
    ``p_holm`` is Holm's step-down adjustment
    (:func:`statsmodels.stats.multitest.multipletests`, ``method="holm"``) over one family
    (column ``family``, :data:`FAMILY`): the comparisons of all methods with one reference, for
    one cell, metric and test. Rows without a p-value (zero variance) are not part of the family
    and say why in ``note``: no p-value is ever made up.

Significance marks (:func:`significance_marks`) use ``p_holm`` of the method-level test
(:data:`MARK_TEST`) for the headline mark; the tables add the corrected test's
(:data:`SEED_MARK_TESTS`) and the trial-level test's (:data:`TRIAL_MARK_TEST`) marks beside it
(:func:`cmkd.analysis.tables.add_power`).

Across cells (:func:`friedman_nemenyi`)
    Each ``dataset x track x dimension`` cell is a block (mean over seeds); the Friedman test
    (:func:`scipy.stats.friedmanchisquare`) asks whether the methods differ at all, the
    Nemenyi test (:func:`scikit_posthocs.posthoc_nemenyi_friedman`) gives pairwise p-values, and
    :func:`critical_difference_diagram` draws them (:func:`scikit_posthocs.critical_difference_diagram`);
    :func:`nemenyi_critical_difference` gives the critical difference from the studentized range.
    Only like networks are ranked together, and only over at least :data:`MIN_CD_BLOCKS` blocks
    (:func:`cmkd.analysis.plots.cd_diagram`).
    Average ranks are 1 for the best method (highest accuracy/F1, lowest RMSE).

Modules: :mod:`~cmkd.analysis.stats.base` (columns, tests, questions, constants),
:mod:`~cmkd.analysis.stats.comparison` (the tests of one comparison: method-level, corrected t,
sign-flip), :mod:`~cmkd.analysis.stats.power` (MDE, smallest p, Tarone),
:mod:`~cmkd.analysis.stats.family` (Holm, marks, a table's family),
:mod:`~cmkd.analysis.stats.paired` (:func:`paired_tests`), :mod:`~cmkd.analysis.stats.ranks`
(Friedman/Nemenyi, CD diagram), :mod:`~cmkd.analysis.stats.run_files` (the runs' files and
:func:`write_stats`). Every public name is re-exported here.
"""
from cmkd.analysis.stats.base import (FAMILY, FIXED_SPLIT_KINDS, MARK_TEST, MDE_TARGET_POINTS, N_BOOTSTRAP,
                                      N_PERMUTATIONS, POWER,
                                      QUESTIONS, SEED_MARK_TESTS, STATS_COLUMNS, TESTS, TRIAL_MARK_TEST,
                                      _zero_variance)
from cmkd.analysis.stats.comparison import _trial_row, corrected_t_test, method_level_test, sign_flip_test
from cmkd.analysis.stats.family import _holm, significance_marks, table_family
from cmkd.analysis.stats.paired import paired_tests
from cmkd.analysis.stats.power import (detectable_difference, minimum_detectable_difference, runs_for_mde, smallest_p,
                                       tarone_size)
from cmkd.analysis.stats.ranks import (MIN_CD_BLOCKS, critical_difference_diagram, friedman_nemenyi,
                                       nemenyi_critical_difference)
from cmkd.analysis.stats.run_files import load_run_designs, load_run_details, write_stats

__all__ = [
    "FAMILY", "FIXED_SPLIT_KINDS", "MARK_TEST", "MDE_TARGET_POINTS", "MIN_CD_BLOCKS", "N_BOOTSTRAP", "N_PERMUTATIONS", "POWER",
    "QUESTIONS", "SEED_MARK_TESTS", "STATS_COLUMNS", "TESTS", "TRIAL_MARK_TEST",
    "corrected_t_test", "critical_difference_diagram", "detectable_difference", "friedman_nemenyi",
    "load_run_designs", "load_run_details", "method_level_test", "minimum_detectable_difference",
    "nemenyi_critical_difference", "paired_tests", "runs_for_mde", "sign_flip_test", "significance_marks", "smallest_p",
    "table_family", "tarone_size", "write_stats",
]
