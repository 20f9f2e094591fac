"""Experiments behind ``rapidnn train``, ``rapidnn sweep`` and ``rapidnn reproduce``.

* :mod:`rapidnn.experiments.common`: subsets, cached retraining, machine description, atomic
  JSON writes, option parsing;
* :mod:`rapidnn.experiments.sweep`: accuracy / memory / energy over a (w, u) grid (resumable);
* :mod:`rapidnn.experiments.schema`: the shape of ``results.json`` and ``sweep.json``, checked
  when they are read back;
* :mod:`rapidnn.experiments.reproduce`: the paper's evaluation table and plots for every
  workload (``results.json``, ``report.md``, ``report.html``);
* :mod:`rapidnn.cli.experiments`: the typer commands (``register(app)``).

See ``docs/reproduce.md``.
"""
