"""Apply a study's trained multitask nnU-Net to a new cohort (inference only, nothing trained).

Every patient x time point of the new cohort with the study's channels is predicted by the
ensemble of the trained folds: masks ``<out>/<case>.nii.gz`` (copied to
``<out>/masks/<patient>_tp<tp>.nii.gz`` for ``extract_lesions.py --predicted-masks``),
``<out>/cases.csv``, predictions.csv (``split = apply``, ``fold = final``; ``y_true`` from the
cohort's outcomes.csv when present) and the per-case Dice of the cases with a reference mask.

Example:
    python scripts/nnunet_apply.py --settings '{"dataset_id": 501, ...}' \\
        --converted results/apply/b/converted --cohort hospital_b/pancreas_multitask \\
        --results results/pancreas_multitask/nnunet/nnUNet_results \\
        --out results/apply/b/pancreas_multitask/nnunet \\
        --predictions results/apply/b/pancreas_multitask/predict/nnunet/predictions.csv \\
        --dice results/apply/b/pancreas_multitask/predict/nnunet/dice.csv
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.cohort import read_table, table_path
from oncoflow.formats import write_predictions
from oncoflow.segmentation.apply import MASKS, predict_new_cohort, unmasked_timepoints
from oncoflow.segmentation.workflow import NnunetSettings
from oncoflow.train import resolve_device


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", required=True, help="the study's nnunet block as JSON")
    parser.add_argument("--converted", type=Path, required=True, help="its converted images root")
    parser.add_argument(
        "--cohort", type=Path, required=True, help="the new cohort's folder (images.csv)"
    )
    parser.add_argument("--results", type=Path, required=True, help="the study's nnUNet_results")
    parser.add_argument("--out", type=Path, required=True, help="folder of masks + cases.csv")
    parser.add_argument("--predictions", type=Path, help="predictions CSV to write")
    parser.add_argument("--dice", type=Path, help="per-case Dice CSV to write")
    parser.add_argument(
        "--without-masks",
        action="store_true",
        help="segment only the time points whose label image has no mask (lesions.segmentor)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    settings = NnunetSettings.from_json(args.settings)
    has_outcomes = table_path(args.cohort, "outcomes").is_file()
    images = read_table(args.cohort, "images")
    if args.without_masks:
        images = unmasked_timepoints(images, settings.label)
        (args.out / MASKS).mkdir(parents=True, exist_ok=True)
        if images.empty:
            return
    predictions, dice = predict_new_cohort(
        settings,
        converted=args.converted,
        images=images,
        results=args.results,
        out_dir=args.out,
        device=resolve_device(args.device).type,
        outcomes=read_table(args.cohort, "outcomes") if has_outcomes else None,
    )
    if args.predictions:
        write_predictions(args.predictions, predictions)
    if args.dice:
        cli.write_csv(args.dice, dice)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
