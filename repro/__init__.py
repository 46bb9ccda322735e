"""Reproduction scripts: one module per table and figure of the paper, run from the repository root.

    python -m repro.table1 [--profile lab|smoke|paper] [--preset P] [--seeds N] [--workers N] [--no-cache] [--dry-run]

``repro`` is a package (not installed with ``tgpo``) so that the scripts import their shared code explicitly
(``from repro import options, session``) instead of putting their folder on ``sys.path``. Library
modules, each with one job:

* :mod:`repro.options` — the command line and output names; :mod:`repro.table_config` — table configs (one schema
  for every profile); :mod:`repro.planning` — run plans; :mod:`repro.session` — a script's start (archive) and
  finish; :mod:`repro.manifest` — manifests and run records; :mod:`repro.method_table` — Table-1-shaped scripts;
  :mod:`repro.paths` — where results and runs live;
* :mod:`repro.lab_runner` — train and evaluate lab runs in worker processes; :mod:`repro.run_cache` — their
  content-addressed cache;
* :mod:`repro.paper` — the paper profile's runs (``tgpo train`` on GPUs, ``tgpo eval``);
* :mod:`repro.records` — reading a ``tgpo eval`` folder into scores and per-problem values;
* :mod:`repro.tables`, :mod:`repro.stats`, :mod:`repro.plots` — tables, intervals and figures from run records.
"""
