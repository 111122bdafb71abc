"""Refit the classification head of one trained fold on its frozen network's lesion descriptors.

The head learns the classes of the fold's training cases from what the frozen network reads in
each case (oncoflow.segmentation.frozen_head) and is stored as fold_<k>/head_refit.pt next to
the checkpoint; prediction classifies with it when nnunet.refit_head is on.

Example:
    python scripts/nnunet_refit_head.py --settings '{"dataset_id": 501, ...}' --fold 0 \\
        --raw results/pancreas_multitask/nnunet/nnUNet_raw \\
        --results results/pancreas_multitask/nnunet/nnUNet_results \\
        --splits results/pancreas_multitask/nnunet/splits_final.json --seed 42
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.segmentation.frozen_head import refit_head
from oncoflow.segmentation.workflow import NnunetSettings
from oncoflow.train import resolve_device


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", required=True, help="the study's nnunet block as JSON")
    parser.add_argument("--fold", type=int, required=True, help="trained fold")
    parser.add_argument("--raw", type=Path, required=True, help="nnUNet_raw of the export")
    parser.add_argument("--results", type=Path, required=True, help="nnUNet_results")
    parser.add_argument("--splits", type=Path, required=True, help="splits_final.json")
    parser.add_argument("--seed", type=int, default=0, help="seed of the head's initialisation")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    settings = NnunetSettings.from_json(args.settings)
    refit_head(
        settings,
        args.fold,
        raw_root=args.raw,
        results=args.results,
        splits_file=args.splits,
        seed=args.seed,
        device=resolve_device(args.device).type,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
