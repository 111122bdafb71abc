"""Export a study's converted images and masks to an nnU-Net raw dataset + splits_final.json.

Training patients go to imagesTr/labelsTr, test patients to imagesTs; splits_final.json holds
one nnU-Net fold per numbered fold of folds.json, by patient (every time point of a patient in the
same fold, test patients in none).

Example:
    python scripts/nnunet_export.py --settings '{"dataset_id": 501, ...}' \\
        --converted results/converted --cohort resources/demo/pancreas_multitask \\
        --splits results/pancreas_multitask/splits.csv \\
        --folds results/pancreas_multitask/folds.json \\
        --raw results/pancreas_multitask/nnunet/nnUNet_raw \\
        --splits-out results/pancreas_multitask/nnunet/splits_final.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from oncoflow import cli
from oncoflow.cohort import load_cohort
from oncoflow.formats import read_folds
from oncoflow.segmentation.workflow import NnunetSettings, export, patient_sites


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", required=True, help="the study's nnunet block as JSON")
    parser.add_argument("--converted", type=Path, required=True, help="converted images root")
    parser.add_argument("--cohort", type=Path, required=True, help="cohort folder (outcomes.csv)")
    parser.add_argument("--splits", type=Path, required=True, help="splits.csv of make_folds")
    parser.add_argument("--folds", type=Path, required=True, help="folds.json of make_folds")
    parser.add_argument("--raw", type=Path, required=True, help="nnUNet_raw folder to write")
    parser.add_argument("--splits-out", type=Path, required=True, help="splits_final.json")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    settings = NnunetSettings.from_json(args.settings)
    cohort = load_cohort(args.cohort)
    export(
        settings,
        converted=args.converted,
        splits=pd.read_csv(args.splits, dtype={"patient_id": str}),
        folds=read_folds(args.folds),
        outcomes=cohort.outcomes,
        raw_root=args.raw,
        splits_out=args.splits_out,
        sites=patient_sites(cohort.images),
    )


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
