"""What the workflow's rules compute, as named, tested functions (torch-free: Snakemake imports
this package while it plans, on a login node without torch).

- :mod:`cmkd.workflow.grid`: :class:`~cmkd.workflow.grid.Grid`, the validated config with its cells
  and seeds, and which methods each kind of job or figure leaves out;
- :mod:`cmkd.workflow.targets`: what the ``all`` rule asks for, table lookups, run files;
- :mod:`cmkd.workflow.figure_jobs`: which figures are planned and what each one draws;
- :mod:`cmkd.workflow.inputs`: input, output and params functions of the data, training and
  tuning rules;
- :mod:`cmkd.workflow.frame_jobs`: the frozen face feature extraction jobs (one per data set and
  extraction settings) and the training jobs' inputs from them;
- :mod:`cmkd.workflow.summary`: the specs of the summary jobs (tables, statistics, claims);
- :mod:`cmkd.workflow.plan`: planning checks (the config, the GPU refusal), job environments and
  resources.

The ``.smk`` files declare rules and call these functions; they hold no logic of their own.
"""
