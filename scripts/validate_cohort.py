"""Check one cohort folder (tables, files, masks, DICOM, slides) and write a JSON report.

Prints one line per problem on stderr (all problems at once) and exits non-zero when there is any;
the report is written in every case.

Example:
    python scripts/validate_cohort.py --cohort demo/net_survival \
        --out results/qc/net_survival/cohort_report.json \
        --clinical age,sex --targets os_time,os_event --mask-labels 1,2

With ``--missing`` (the study's missing-input decision, as the workflow computes it from
``studies.<name>.missing``), an empty required clinical value is a warning when the policy is
``clinical: impute`` or its patient is dropped, and the report records the decision (policy,
dropped patients with what they lack, imputed columns, patients kept with fewer time points).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.validate import validate_cohort


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _labels(text: str) -> list[int]:
    try:
        return [int(part) for part in _names(text)]
    except ValueError as exc:
        msg = f"expected comma-separated integers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cohort", type=Path, required=True, help="cohort folder (images.csv, ...)"
    )
    parser.add_argument("--out", type=Path, required=True, help="report to write (JSON)")
    parser.add_argument(
        "--clinical", type=_names, default=[], help="required clinical fields, e.g. age,sex"
    )
    parser.add_argument(
        "--targets", type=_names, default=[], help="outcome targets, e.g. os_time,os_event"
    )
    parser.add_argument(
        "--mask-labels",
        type=_labels,
        default=None,
        help="labels masks may hold besides 0, e.g. 1,2 (default: any positive integer)",
    )
    cli.add_dicom_policy_arguments(parser)
    parser.add_argument(
        "--patient-label",
        default="patient",
        metavar="NAME",
        help="word printed before patient IDs in messages (default: patient)",
    )
    parser.add_argument(
        "--optional-outcomes",
        action="store_true",
        help="outcomes.csv may be absent (a new cohort that is only predicted)",
    )
    parser.add_argument(
        "--missing",
        type=cli.missing_decision,
        default=None,
        metavar="JSON",
        help='the study\'s missing-input decision: {"policy": {...}, "dropped": {patient: '
        '[reasons]}, "imputed": {column: [patients]}, "partial": {patient: [time points]}} '
        "(default: none, every empty required clinical value is an error)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> int:
    report = validate_cohort(
        args.cohort,
        clinical=args.clinical,
        targets=args.targets,
        mask_labels=args.mask_labels,
        tilt=args.tilt,
        uneven_spacing=args.uneven_spacing,
        outcomes_required=not args.optional_outcomes,
        missing=args.missing,
    )
    cli.write_json(args.out, report.to_dict(), args)
    for problem in report.warnings:
        print(f"warning: {problem.line(patient_label=args.patient_label)}", file=sys.stderr)
    for problem in report.problems:
        print(f"error: {problem.line(patient_label=args.patient_label)}", file=sys.stderr)
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
