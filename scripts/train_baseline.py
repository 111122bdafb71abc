"""Train a tabular baseline of a study in its folds and write its predictions.

The baseline is a penalised logistic, multinomial or Cox model of the study's clinical columns
(and, with ``size``, the volumes of the given masks), fit in every fold on the fold's training
patients only (oncoflow.baselines). Its predictions.csv is evaluated and compared like any model's.

Example:
    python scripts/train_baseline.py --inputs clinical,size \
        --cohort resources/demo/liver_response --splits results/liver_response/splits.csv \
        --folds results/liver_response/folds.json --converted results/converted \
        --settings '{"clinical": ["afp_pre"], "targets": ["response"], "mask_labels": [1]}' \
        --out results/liver_response/train/baseline_clinical_size/predictions.csv \
        --summary results/liver_response/train/baseline_clinical_size/baseline.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.baselines.train import BaselineSpec, summary_settings, train_baseline
from oncoflow.formats import write_predictions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", required=True, help="input blocks, e.g. clinical,size")
    parser.add_argument("--cohort", type=Path, required=True, help="cohort folder")
    parser.add_argument("--splits", type=Path, required=True, help="the study's splits.csv")
    parser.add_argument("--folds", type=Path, required=True, help="the study's folds.json")
    parser.add_argument("--converted", type=Path, help="converted images (size inputs)")
    parser.add_argument(
        "--settings",
        type=json.loads,
        required=True,
        help='JSON: {"clinical": [...], "targets": [...], "mask_labels": [...]}',
    )
    parser.add_argument(
        "--protocol",
        choices=("ensemble", "final"),
        default="ensemble",
        help="test rows: mean of the fold models (ensemble) or one model on all training patients",
    )
    parser.add_argument("--horizons", default="", help="survival horizons in days, e.g. 365,730")
    parser.add_argument("--seed", type=int, default=0, help="seed of the inner folds")
    parser.add_argument("--out", type=Path, required=True, help="predictions.csv to write")
    parser.add_argument("--summary", type=Path, required=True, help="baseline.json to write")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    settings = args.settings
    spec = BaselineSpec(
        inputs=tuple(args.inputs.split(",")),
        clinical=tuple(settings.get("clinical", [])),
        targets=tuple(settings.get("targets", [])),
        mask_labels=tuple(settings.get("mask_labels", [1])),
        protocol=args.protocol,
        horizons=tuple(float(h) for h in args.horizons.split(",") if h),
        seed=args.seed,
    )
    predictions, summary = train_baseline(
        spec, cohort=args.cohort, splits=args.splits, folds=args.folds, converted=args.converted
    )
    write_predictions(args.out, predictions)
    cli.write_json(args.summary, {"settings": summary_settings(spec), **summary}, args)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
