"""Synthetic demo cohorts for the six oncoflow studies, with planted, documented mechanisms.

``write_demo(out_dir, seed=..., patients=...)`` writes ``out_dir/<study>/`` for every study:
``images.csv``, ``clinical.csv``, ``outcomes.csv``, ``splits.csv``, ``oracle.json`` and the
images under ``images/<patient>/...`` (NIfTI, DICOM series + RTSTRUCT, pyramidal TIFF / SVS
slides). Outcomes are drawn from known functions of the image latents and clinical variables,
so the best achievable score on the test splits (``oracle.json``) is known. The mechanism of each
study is in its module docstring and in ``docs/demo.md``.

Example:
    >>> from oncoflow.demo import plan_cohort
    >>> plan = plan_cohort("liver_response", seed=0, patients=8)
    >>> sorted(plan.images["series"].unique())
    ['T1', 'T1V', 'T2']
"""

from __future__ import annotations

from oncoflow.demo.cohort import MIN_PATIENTS, DemoPlan, plan_cohort, write_cohort, write_demo

__all__ = ["MIN_PATIENTS", "DemoPlan", "plan_cohort", "write_cohort", "write_demo"]
