"""Paired tests between the models of one study on their shared test patients.

Survival: paired patient-level bootstrap of the Harrell C difference; classification: DeLong's
test of the AUC difference. Within a variant every model is compared with the variant's best
validation model; across variants, the same model (e.g. raw vs ComBat features).
Negative-control predictions are skipped (the report shows them next to the real models).

Example:
    python scripts/compare_models.py \
        --predictions raw=results/net_survival/train/raw/predictions.csv \
        combat=results/net_survival/train/combat/predictions.csv \
        --out results/net_survival/evaluate/comparisons.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.errors import OncoflowError
from oncoflow.evaluate.engine import compare_models
from oncoflow.formats import read_predictions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--predictions",
        type=cli.labelled_path,
        nargs="+",
        required=True,
        metavar="LABEL=CSV",
        help="predictions.csv of each variant, e.g. raw=PATH combat=PATH",
    )
    parser.add_argument("--out", type=Path, required=True, help="comparisons JSON to write")
    parser.add_argument(
        "--n-boot", type=int, default=1000, help="bootstrap replicates (default: 1000)"
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    labels = [label for label, _ in args.predictions]
    if len(set(labels)) != len(labels):
        msg = f"--predictions: a label is given twice ({', '.join(labels)})"
        raise OncoflowError(msg)
    tables = {label: read_predictions(path) for label, path in args.predictions}
    result = compare_models(tables, n_boot=args.n_boot, seed=args.seed, alpha=args.alpha)
    result.update({"n_boot": args.n_boot, "alpha": args.alpha})
    cli.write_json(args.out, result, args)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
