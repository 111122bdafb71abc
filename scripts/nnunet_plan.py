"""Run nnUNetv2_plan_and_preprocess (configured planner) and derive the configured plans variant.

The planner's plans (e.g. nnUNetResEncUNetMPlans) are copied under the configured plans name with
the configured batch size / width / depth (nothing = as planned) and the classification head; the
data identifier is kept, so the preprocessed data serve both.

Example:
    python scripts/nnunet_plan.py --settings '{"dataset_id": 501, ...}' \\
        --raw results/pancreas_multitask/nnunet/nnUNet_raw \\
        --splits results/pancreas_multitask/nnunet/splits_final.json \\
        --out results/pancreas_multitask/nnunet/nnUNet_preprocessed
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.segmentation.workflow import NnunetSettings, plan


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", required=True, help="the study's nnunet block as JSON")
    parser.add_argument("--raw", type=Path, required=True, help="nnUNet_raw folder of the export")
    parser.add_argument("--splits", type=Path, required=True, help="splits_final.json to install")
    parser.add_argument("--out", type=Path, required=True, help="nnUNet_preprocessed to write")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    settings = NnunetSettings.from_json(args.settings)
    plan(settings, raw_root=args.raw, splits_file=args.splits, out_root=args.out)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
