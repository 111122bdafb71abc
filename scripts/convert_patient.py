"""Convert every image of one patient of a cohort to NIfTI + JSON sidecars and a manifest.

Reads the cohort's images.csv, converts the patient's DICOM series (PET to SUVbw, RTSTRUCT masks)
and NIfTI files into OUT/<timepoint>/<modality>[_<series>].nii.gz (+ .json, + _mask.nii.gz) and
lists outputs and skipped rows (whole-slide images) in OUT/manifest.json. One Snakemake job per
patient. Exits 1 with a one-line message naming the patient and the file on bad input.

Example:
    python scripts/convert_patient.py --cohort resources/demo/nsclc_mmdls --patient NS001 \
        --out results/converted/NS001
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.cohort import read_table
from oncoflow.convert import convert_patient
from oncoflow.errors import ConversionError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cohort", type=Path, required=True, help="cohort folder holding images.csv"
    )
    parser.add_argument("--patient", required=True, help="patient_id to convert")
    parser.add_argument("--out", type=Path, required=True, help="output folder of the patient")
    cli.add_dicom_policy_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> int | None:
    rows = read_table(args.cohort, "images")
    missing = {"patient_id", "timepoint", "modality", "series", "path"} - set(rows.columns)
    if missing:
        raise ConversionError(
            f"{args.cohort / 'images.csv'}: missing column(s) {', '.join(sorted(missing))}"
        )
    convert_patient(
        args.cohort,
        rows,
        args.out,
        patient_id=args.patient,
        tilt=args.tilt,
        uneven_spacing=args.uneven_spacing,
        provenance=args.provenance.as_dict(),
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
