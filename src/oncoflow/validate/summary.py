"""Merge the per-study cohort reports into the run's ``results/qc/cohort_report.json``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def merge_reports(paths: Sequence[Path]) -> dict[str, Any]:
    """Combine per-study validation reports.

    The study name is taken from the parent folder of each report
    (``results/qc/<study>/cohort_report.json``).

    Args:
        paths: Report files written by ``scripts/validate_cohort.py``.

    Returns:
        A dict with keys ``ok``, ``n_patients``, ``n_images``, ``problems`` and ``studies``
        (study -> its report); ``ok`` is true only when every study is, totals are sums.
    """
    studies: dict[str, Any] = {}
    for path in sorted(paths):
        studies[Path(path).parent.name] = json.loads(Path(path).read_text())
    problems = [
        {"study": study, **problem}
        for study, report in studies.items()
        for problem in report.get("problems", [])
    ]
    return {
        "ok": all(report.get("ok", False) for report in studies.values()),
        "n_patients": sum(int(report.get("n_patients", 0)) for report in studies.values()),
        "n_images": sum(int(report.get("n_images", 0)) for report in studies.values()),
        "problems": problems,
        "studies": studies,
    }
