"""Lesion crops of one patient: one <timepoint>.npz per time point (lesion slices, non-lesion
crops, context patches; see oncoflow.lesions.extract for the keys).

Example:
    python scripts/extract_lesions.py --converted results/converted --patient PP001 \\
        --settings '{"images": ["CT_arterial", "CT_venous", "CT_delayed"], "lesion_labels": [2]}' \\
        --out results/pancreas_progression/lesions/PP001
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.lesions.extract import LesionSettings, extract_patient


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--converted", type=Path, required=True, help="converted images root")
    parser.add_argument("--patient", required=True, help="patient id")
    parser.add_argument("--settings", required=True, help="the study's lesions block as JSON")
    parser.add_argument("--seed", type=int, default=0, help="seed of the negative boxes")
    parser.add_argument(
        "--predicted-masks",
        type=Path,
        nargs="*",
        default=[],
        help="folders of predicted masks <patient>_tp<tp>.nii.gz used instead of the given ones",
    )
    parser.add_argument(
        "--fallback-masks",
        type=Path,
        nargs="*",
        default=[],
        help="folders of predicted masks <patient>_tp<tp>.nii.gz for time points without a mask",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder of the npz files")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    settings = LesionSettings.from_mapping(json.loads(args.settings))
    extract_patient(
        args.converted,
        args.patient,
        settings,
        args.out,
        seed=args.seed,
        predicted_masks=args.predicted_masks,
        fallback_masks=args.fallback_masks,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
