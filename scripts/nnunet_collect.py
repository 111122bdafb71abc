"""Collect the nnU-Net subsets into predictions.csv (classes) and dice.csv (per case x region).

Example:
    python scripts/nnunet_collect.py --settings '{"dataset_id": 501, ...}' \\
        --raw results/pancreas_multitask/nnunet/nnUNet_raw --converted results/converted \\
        --predicted results/pancreas_multitask/nnunet/predict/fold_0 \\
        results/pancreas_multitask/nnunet/predict/test \\
        --predictions results/pancreas_multitask/train/nnunet/predictions.csv \\
        --dice results/pancreas_multitask/train/nnunet/dice.csv
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.formats import write_predictions
from oncoflow.segmentation.workflow import NnunetSettings, collect


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", required=True, help="the study's nnunet block as JSON")
    parser.add_argument("--raw", type=Path, required=True, help="nnUNet_raw of the export")
    parser.add_argument("--converted", type=Path, required=True, help="converted images root")
    parser.add_argument("--predicted", type=Path, nargs="+", required=True, help="subset folders")
    parser.add_argument("--predictions", type=Path, required=True, help="predictions.csv")
    parser.add_argument("--dice", type=Path, required=True, help="per-case Dice CSV")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    settings = NnunetSettings.from_json(args.settings)
    predictions, dice = collect(
        settings, raw_root=args.raw, predicted=args.predicted, converted=args.converted
    )
    write_predictions(args.predictions, predictions)
    cli.write_csv(args.dice, dice)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
