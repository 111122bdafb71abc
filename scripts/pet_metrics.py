"""PET metrics of one ROI (SUVmax, SUVmean, SUVpeak, MTV, TLG) into a tidy CSV.

Writes ``--out`` with one row per metric: ``feature, value, unit, label, threshold,
relative_threshold, settings_hash`` (led by ``patient_id`` / ``timepoint`` when given). Units:
SUV in g/mL (SUVbw), MTV in mL, TLG in g. Definitions: ``oncoflow.features.pet``.

Example:
    python scripts/pet_metrics.py --pet results/converted/NS001/0/PET.nii.gz \
        --mask results/converted/NS001/0/PET_mask.nii.gz --label 2 \
        --threshold-rel 0.41 --out NS001_pet.csv --patient NS001 --timepoint 0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.errors import FeatureError
from oncoflow.features.pet import pet_metrics_table
from oncoflow.features.radiomics import write_features


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pet", type=Path, required=True, help="SUV image (NIfTI, g/mL)")
    parser.add_argument("--mask", type=Path, required=True, help="label map on the PET grid")
    parser.add_argument("--out", type=Path, required=True, help="metrics table to write (CSV)")
    parser.add_argument(
        "--label", type=int, default=None, help="ROI label (default: every non-zero voxel)"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--threshold", type=float, default=None, metavar="SUV", help="absolute SUV threshold"
    )
    group.add_argument(
        "--threshold-rel",
        type=float,
        default=None,
        metavar="FRACTION",
        help="threshold as a fraction of SUVmax, e.g. 0.41",
    )
    parser.add_argument(
        "--foci-labels",
        type=int,
        nargs="*",
        default=None,
        metavar="LABEL",
        help="also count avid foci outside the ROI, apart inside these mask labels (e.g. 1 = lung)",
    )
    parser.add_argument(
        "--foci-threshold",
        type=float,
        default=None,
        metavar="SUV",
        help="SUV a focus reaches (default 2.5)",
    )
    parser.add_argument("--patient", default=None, help="patient ID written as patient_id")
    parser.add_argument("--timepoint", type=int, default=None, help="timepoint written as column")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def _foci(args: argparse.Namespace) -> dict | None:
    if args.foci_labels is None:
        return None
    foci: dict = {"labels": list(args.foci_labels)}
    if args.foci_threshold is not None:
        foci["threshold"] = args.foci_threshold
    return foci


def _main(args: argparse.Namespace) -> int | None:
    try:
        table = pet_metrics_table(
            args.pet,
            args.mask,
            label=args.label,
            threshold=args.threshold,
            relative_threshold=args.threshold_rel,
            foci=_foci(args),
        )
    except FeatureError as exc:
        if args.patient is None:
            raise
        raise FeatureError(f"patient {args.patient}: {exc}") from exc
    write_features(table, args.out, patient_id=args.patient, timepoint=args.timepoint)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
