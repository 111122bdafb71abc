"""Cohort validation: check a cohort folder before any model rule runs.

:func:`validate_cohort` runs every check (tables, schemas, IDs, references, splits, outcomes,
clinical fields, files, geometry, masks, RTSTRUCT, DICOM, slides) and returns a
:class:`CohortReport` listing all problems at once; ``scripts/validate_cohort.py`` writes it as
``results/qc/cohort_report.json`` and prints one line per problem.
"""

from __future__ import annotations

from oncoflow.validate.core import CHECKS, POLICIES, validate_cohort
from oncoflow.validate.report import CohortReport, Problem

__all__ = ["CHECKS", "POLICIES", "CohortReport", "Problem", "validate_cohort"]
