"""The pieces of a training run that :mod:`cmkd.train` chains into its phases (load, build, fit,
score, write): torch set-up, the torch-free checks, in-memory parts and evaluation, and the
trivial baselines' own run kind. :mod:`cmkd.crossval` pools the folds of a cross-validated run."""
