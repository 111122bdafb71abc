"""The result of a cohort validation: a list of problems plus count summaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ERROR = "error"
WARNING = "warning"


@dataclass
class Problem:
    """One thing wrong with a cohort, in words a user can act on.

    Attributes:
        patient_id: The patient concerned, or ``None`` for table-level problems.
        file: The file concerned as written in the tables (relative to the cohort folder), or the
            table file name (``"images.csv"``); ``None`` when no single file is at fault.
        check: Name of the check that found it (``"schema"``, ``"geometry"``, ...).
        message: What is wrong, including the offending value.
        severity: ``"error"`` (the cohort is not usable) or ``"warning"`` (reported only).
        column: Table column concerned, when there is one (used to merge duplicate findings).
    """

    patient_id: str | None
    file: str | None
    check: str
    message: str
    severity: str = ERROR
    column: str | None = None

    def line(self, *, patient_label: str = "patient") -> str:
        """Return the one-line form ``patient <id>: <file>: <message>`` (absent parts left out).

        Args:
            patient_label: Word printed before the patient ID (e.g. ``"subject"``).
        """
        parts = []
        if self.patient_id is not None:
            parts.append(f"{patient_label} {self.patient_id}")
        if self.file is not None:
            parts.append(str(self.file))
        parts.append(self.message)
        return ": ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used in the report."""
        return {
            "patient_id": self.patient_id,
            "file": self.file,
            "check": self.check,
            "message": self.message,
        }


@dataclass
class CohortReport:
    """Everything :func:`oncoflow.validate.validate_cohort` found about one cohort folder.

    Attributes:
        cohort: The cohort folder as given.
        problems: Errors; the cohort is usable only when there are none.
        warnings: Findings that do not block the workflow (e.g. a slide without µm/px metadata).
        n_patients: Distinct patients in ``images.csv``.
        n_images: Rows of ``images.csv``.
        per_site: ``{site: {"patients": n, "images": n}}``.
        per_split: ``{split: {"patients": n, "images": n}}``; empty without ``splits.csv``.
        excluded: Patients with at least one error (what a lenient run would have to drop).
        checks_run: Names of the checks that ran, in order.
        options: The settings the checks ran with.
        missing: The study's missing-input decision
            (:func:`oncoflow.workflow.missing.missing_record`): the policy, the patients the
            workflow leaves out with what they lack (not errors), the clinical columns imputed
            with their patients, the patients kept with fewer time points;
            ``None`` when validation ran without one (then left out of the JSON).
    """

    cohort: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    n_patients: int = 0
    n_images: int = 0
    per_site: dict[str, dict[str, int]] = field(default_factory=dict)
    per_split: dict[str, dict[str, int]] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)
    checks_run: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.problems

    def add(self, found: list[Problem]) -> None:
        """Sort problems into :attr:`problems` and :attr:`warnings` by severity."""
        for problem in found:
            (self.warnings if problem.severity == WARNING else self.problems).append(problem)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form written to ``cohort_report.json``."""
        data = {
            "cohort": self.cohort,
            "ok": self.ok,
            "n_patients": self.n_patients,
            "n_images": self.n_images,
            "per_site": self.per_site,
            "per_split": self.per_split,
            "problems": [p.to_dict() for p in self.problems],
            "warnings": [p.to_dict() for p in self.warnings],
            "excluded": self.excluded,
            "checks_run": self.checks_run,
            "options": self.options,
        }
        if self.missing is not None:
            data["missing"] = self.missing
        return data
