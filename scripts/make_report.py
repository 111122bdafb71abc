"""Assemble the run report: one self-contained HTML page from the study sections.

Example:
    python scripts/make_report.py --sections results/report/*/section.html \
        --cohort-report results/qc/cohort_report.json --seed 42 --out results/report/index.html
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.report.html import report_page


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sections", type=Path, nargs="+", required=True,
        help="study sections, results/report/<study>/section.html",
    )  # fmt: skip
    parser.add_argument(
        "--summaries", type=Path, nargs="*", default=[],
        help="the studies' summary.json (the first-screen table)",
    )  # fmt: skip
    parser.add_argument("--cohort-report", type=Path, required=True, help="all-study QC report")
    parser.add_argument("--seed", type=int, default=0, help="the run's seed")
    parser.add_argument("--out", type=Path, required=True, help="report HTML to write")
    parser.add_argument(
        "--scale", choices=["smoke", "full"], default=None, help="demo scale (smoke: a notice)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    qc = json.loads(args.cohort_report.read_text())
    provenance = qc.get("provenance", {})
    sections = {path.parent.name: path.read_text() for path in args.sections}
    page = report_page(
        sections,
        versions=provenance.get("versions", {}),
        seed=args.seed,
        config_hash=provenance.get("config_hash", ""),
        n_patients=int(qc.get("n_patients", 0)),
        scale=args.scale,
        summary=[row for path in args.summaries for row in json.loads(path.read_text())["rows"]],
    )
    cli.write_text(args.out, page)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
