"""Permuted-label control of the multitask head: new heads on the frozen network's features.

For every trained fold, new heads (one per run) learn permuted classes from the features the
frozen network hands its head; the rows of predictions.csv carry a ``permutation`` column
(oncoflow.segmentation.frozen_head).

Example:
    python scripts/nnunet_head_control.py --settings '{"dataset_id": 501, ...}' \\
        --raw results/pancreas_multitask/nnunet/nnUNet_raw \\
        --results results/pancreas_multitask/nnunet/nnUNet_results \\
        --splits results/pancreas_multitask/nnunet/splits_final.json \\
        --predicted results/pancreas_multitask/nnunet/predict/fold_0 \\
            results/pancreas_multitask/nnunet/predict/test \\
        --permutations 5 --seed 42 \\
        --predictions results/pancreas_multitask/train/permuted/predictions.csv
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.errors import ConfigError
from oncoflow.formats import write_predictions
from oncoflow.segmentation.frozen_head import permuted_head_control
from oncoflow.segmentation.predict import predicted_offsets
from oncoflow.segmentation.workflow import NnunetSettings
from oncoflow.train import resolve_device


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", required=True, help="the study's nnunet block as JSON")
    parser.add_argument("--raw", type=Path, required=True, help="nnUNet_raw of the export")
    parser.add_argument("--results", type=Path, required=True, help="nnUNet_results")
    parser.add_argument("--splits", type=Path, required=True, help="splits_final.json")
    parser.add_argument(
        "--predicted",
        type=Path,
        nargs="*",
        default=[],
        help="prediction folders (predict/<subset>): with calibrate, their cases.csv offsets",
    )
    parser.add_argument("--permutations", type=int, default=5, help="runs per fold (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the permutations")
    parser.add_argument("--predictions", type=Path, required=True, help="predictions.csv")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    if args.permutations < 1:
        msg = f"--permutations must be at least 1, got {args.permutations}"
        raise ConfigError(msg)
    settings = NnunetSettings.from_json(args.settings)
    rows = permuted_head_control(
        settings,
        raw_root=args.raw,
        results=args.results,
        splits_file=args.splits,
        permutations=args.permutations,
        seed=args.seed,
        device=resolve_device(args.device).type,
        offsets=predicted_offsets(args.predicted) if settings.calibration else None,
    )
    write_predictions(args.predictions, rows)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
