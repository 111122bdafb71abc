"""Train one nnU-Net fold with oncoflow's multitask trainer (nnUNetv2_train -tr ...).

Resumes a killed run from checkpoint_latest.pth (nnUNetv2_train --c) when the fold folder was
trained under the same plans, data, split and schedule; otherwise starts over.

Example:
    python scripts/nnunet_train.py --settings '{"dataset_id": 501, ...}' --fold 0 \\
        --preprocessed results/pancreas_multitask/nnunet/nnUNet_preprocessed \\
        --results results/pancreas_multitask/nnunet/nnUNet_results --device auto
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.segmentation.workflow import NnunetSettings, train_fold
from oncoflow.train import resolve_device


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", required=True, help="the study's nnunet block as JSON")
    parser.add_argument("--fold", type=int, required=True, help="nnU-Net fold to train")
    parser.add_argument("--preprocessed", type=Path, required=True, help="nnUNet_preprocessed")
    parser.add_argument("--results", type=Path, required=True, help="nnUNet_results")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    settings = NnunetSettings.from_json(args.settings)
    device = resolve_device(args.device).type
    train_fold(
        settings, args.fold, preprocessed=args.preprocessed, results=args.results, device=device
    )


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
