"""Join the fold predictions of a deep model into the study's predictions.csv.

Validation rows stay per fold; every test patient gets one ``final`` row whose scores are the mean
over the fold models (probabilities, risks and survival probabilities averaged).

Example:
    python scripts/collect_model.py \
        --folds results/liver_response/train/relation_net/fold_*/predictions.csv \
        --out results/liver_response/train/relation_net/predictions.csv
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.deep.ensemble import collect_folds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=Path, nargs="+", required=True, help="fold predictions")
    parser.add_argument("--out", type=Path, required=True, help="predictions.csv to write")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    collect_folds(args.folds, args.out)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
