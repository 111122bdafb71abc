"""Merge per-study cohort validation reports into one JSON file.

Example:
    python scripts/qc_summary.py --reports results/qc/*/cohort_report.json \
        --out results/qc/cohort_report.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.validate.summary import merge_reports


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", nargs="+", type=Path, required=True, help="per-study reports")
    parser.add_argument("--out", type=Path, required=True, help="merged report (JSON)")
    return parser


def _main(args: argparse.Namespace) -> int:
    merged = merge_reports(args.reports)
    cli.write_json(args.out, merged, args, sort_keys=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
