"""Harmonise a new cohort's feature table with the ComBat estimates frozen at training time.

The model is the final fold's ComBat (fit on all training patients) saved by harmonize.py
(``--model``). Nothing is refit: sites seen in training use their training location/scale, a site
without training patients is estimated from its own rows (or refused, as the training run chose).
Writes the harmonised table (same rows and columns) and before/after site-effect statistics.

Example:
    python scripts/apply_harmonize.py \
        --features results/apply/site_d/net_survival/features/radiomics.csv \
        --cohort new_cohort/ --model results/net_survival/harmonize/radiomics/final_combat.pkl \
        --out results/apply/site_d/net_survival/harmonize/radiomics.csv \
        --stats results/apply/site_d/net_survival/harmonize/radiomics_stats.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.harmonize.table import apply_frozen_combat


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path, required=True, help="new cohort's features")
    parser.add_argument("--cohort", type=Path, required=True, help="new cohort's folder")
    parser.add_argument("--model", type=Path, required=True, help="final_combat.pkl of training")
    parser.add_argument("--out", type=Path, required=True, help="harmonised table to write")
    parser.add_argument("--stats", type=Path, required=True, help="statistics JSON to write")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    table, stats = apply_frozen_combat(args.features, args.cohort, args.model)
    cli.write_csv(args.out, table)
    cli.write_json(args.stats, stats, args)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
