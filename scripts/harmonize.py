"""ComBat-harmonise a feature table for one fold: fit on the fold's training patients, apply to all.

The batch of each patient is its ``site`` in the cohort's images.csv (one per patient), the
covariates to preserve come from clinical.csv (text columns categorical, numeric continuous).
Writes the harmonised table (same columns and rows) and before/after site-effect statistics
(Kruskal-Wallis and ANOVA per feature by site) as JSON.

Example:
    python scripts/harmonize.py --features results/net_survival/features/features.csv \
        --cohort demo/net_survival --folds results/net_survival/folds.json --fold 0 \
        --out results/net_survival/harmonize/fold0/features.csv \
        --stats results/net_survival/harmonize/fold0/site_effect.json --covariates age,sex
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.harmonize.table import harmonize_fold


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path, required=True, help="feature table (CSV)")
    parser.add_argument(
        "--cohort", type=Path, required=True, help="cohort folder (images.csv, ...)"
    )
    parser.add_argument(
        "--folds",
        type=Path,
        required=True,
        help='folds JSON: {"folds": {"<K>": {"fit": [ids], "apply": [ids]}}}',
    )
    parser.add_argument("--fold", required=True, help="fold key K")
    parser.add_argument("--out", type=Path, required=True, help="harmonised table to write (CSV)")
    parser.add_argument("--stats", type=Path, required=True, help="site-effect statistics (JSON)")
    parser.add_argument(
        "--model", type=Path, default=None, help="save the fitted ComBat here (for apply)"
    )
    parser.add_argument(
        "--batch", default="site", help="images.csv column with the batch (default: %(default)s)"
    )
    parser.add_argument(
        "--covariates",
        type=_names,
        default=[],
        help="clinical.csv columns to preserve, e.g. age,sex (text = categorical)",
    )
    parser.add_argument(
        "--non-parametric", action="store_true", help="non-parametric empirical-Bayes priors"
    )
    parser.add_argument("--no-eb", action="store_true", help="no empirical-Bayes shrinkage")
    parser.add_argument("--mean-only", action="store_true", help="adjust batch means only")
    parser.add_argument(
        "--ref-batch", default=None, metavar="NAME", help="batch left unchanged (reference)"
    )
    parser.add_argument(
        "--unseen-batches",
        choices=("estimate", "error"),
        default="estimate",
        help="batches without training patients (external sites): estimate their location/scale "
        "from their own features, or refuse (default: %(default)s)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    table, stats = harmonize_fold(
        args.features,
        args.cohort,
        args.folds,
        args.fold,
        batch_column=args.batch,
        covariates=args.covariates,
        parametric=not args.non_parametric,
        eb=not args.no_eb,
        mean_only=args.mean_only,
        ref_batch=args.ref_batch,
        unseen=args.unseen_batches,
        model_out=args.model,
    )
    cli.write_csv(args.out, table)
    cli.write_json(args.stats, stats, args)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
