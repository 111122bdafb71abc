"""Predict masks and case-level classes of one subset with the trained multitask nnU-Net.

Subset fold_<k>: the validation cases of fold k, predicted by fold k's model; subset test: the
internal and external test cases, predicted by the ensemble of the trained folds. The class of a
case is the mean softmax of the head over every sliding-window patch.

Example:
    python scripts/nnunet_predict.py --settings '{"dataset_id": 501, ...}' --subset test \\
        --raw results/pancreas_multitask/nnunet/nnUNet_raw \\
        --results results/pancreas_multitask/nnunet/nnUNet_results \\
        --splits results/pancreas_multitask/nnunet/splits_final.json \\
        --out results/pancreas_multitask/nnunet/predict/test
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.segmentation.predict import predict_subset
from oncoflow.segmentation.workflow import NnunetSettings
from oncoflow.train import resolve_device


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", required=True, help="the study's nnunet block as JSON")
    parser.add_argument("--subset", required=True, help="fold_<k> or test")
    parser.add_argument("--raw", type=Path, required=True, help="nnUNet_raw of the export")
    parser.add_argument("--results", type=Path, required=True, help="nnUNet_results")
    parser.add_argument("--splits", type=Path, required=True, help="splits_final.json")
    parser.add_argument("--out", type=Path, required=True, help="folder of masks + cases.csv")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    settings = NnunetSettings.from_json(args.settings)
    predict_subset(
        settings,
        args.subset,
        raw_root=args.raw,
        results=args.results,
        splits_file=args.splits,
        out_dir=args.out,
        device=resolve_device(args.device).type,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
