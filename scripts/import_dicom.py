"""Build a cohort folder from a DICOM tree of any layout (series, RTSTRUCT and SEG masks).

Indexes every file by its headers (an index cache makes a second run fast), classifies series by
ordered rules (``params/import/dicom_rules.yaml`` unless ``--rules``), derives time points from
study dates, links each RTSTRUCT / SEG to its image series, pseudonymises patient IDs with a keyed
hash (``--key-file``, created when missing; the ID mapping is written beside it) and writes
``images.csv``, ``clinical.csv``, ``outcomes.csv`` and ``import_report.json`` (every skipped object
with its reason). Exits 1 with a one-line message on bad input.

Example:
    python scripts/import_dicom.py --dicom export/ --out resources/cohorts/liver \
        --key-file ~/keys/liver.key --clinical clinical.csv --outcomes outcomes.csv
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.importer import import_dicom, read_id_table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dicom", type=Path, required=True, help="the DICOM tree")
    parser.add_argument("--out", type=Path, required=True, help="cohort folder to write")
    parser.add_argument(
        "--key-file", type=Path, required=True, help="pseudonymisation key (outside results/)"
    )
    parser.add_argument("--rules", type=Path, help="rule file (default: the repository's)")
    parser.add_argument("--clinical", type=Path, help="clinical table keyed by original IDs")
    parser.add_argument("--outcomes", type=Path, help="outcome table keyed by original IDs")
    parser.add_argument(
        "--id-column", default="patient_id", help="column of the original IDs in those tables"
    )
    parser.add_argument(
        "--anchor-column", help="clinical date column anchoring time point 0 (e.g. treatment)"
    )
    parser.add_argument("--cache", type=Path, help="index cache (default OUT/.dicom_index.json)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes reading headers"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> int:
    report = import_dicom(
        args.dicom,
        args.out,
        args.key_file,
        rules=args.rules,
        clinical=read_id_table(args.clinical) if args.clinical else None,
        outcomes=read_id_table(args.outcomes) if args.outcomes else None,
        id_column=args.id_column,
        anchor_column=args.anchor_column,
        cache=args.cache,
        workers=args.workers,
    )
    skipped = ", ".join(f"{n} {r}" for r, n in sorted(report["skipped_by_reason"].items()))
    print(
        f"{report['patients']} patients, {report['images']} image series, {report['masks']} masks;"
        f" skipped: {skipped or 'nothing'} ({args.out / 'import_report.json'})"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
