"""Merge per-patient tidy feature CSVs into one wide study table.

Columns: ``patient_id, [timepoint], <prefix>__<feature>, ...``; provenance columns are dropped
after checking that all inputs share one settings hash.

Example:
    python scripts/merge_features.py --inputs results/net_survival/features/*/radiomics.csv \
        --prefix radiomics --out results/net_survival/features/radiomics.csv
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.features.tables import merge_features


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--inputs", type=Path, nargs="+", required=True, help="per-patient tidy feature CSVs"
    )
    parser.add_argument("--out", type=Path, required=True, help="wide table to write (CSV)")
    parser.add_argument(
        "--prefix",
        default="radiomics",
        help="source name before each feature column (default: %(default)s)",
    )
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> int | None:
    merge_features(args.inputs, out=args.out, prefix=args.prefix)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
