"""Convert one DICOM series to NIfTI with a JSON sidecar (optionally a mask; PET to SUVbw).

The sidecar records geometry, source (no PHI), warnings, corrections (gantry tilt, uneven slice
spacing) and, with --suv, every SUVbw factor. Exits 1 with a one-line message on bad input.

Example:
    python scripts/convert_dicom.py --series dicom/P001/ct --out P001_ct.nii.gz \
        --sidecar P001_ct.json --mask dicom/P001/rtstruct.dcm --roi Lung+GTV \
        --mask-out P001_ct_mask.nii.gz
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.convert import convert_dicom_series
from oncoflow.errors import ConversionError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=Path, required=True, help="folder of one DICOM series")
    parser.add_argument("--out", type=Path, required=True, help="image to write (.nii.gz)")
    parser.add_argument("--sidecar", type=Path, required=True, help="JSON sidecar to write")
    parser.add_argument(
        "--mask", "--rtstruct", type=Path, dest="mask", help="RTSTRUCT or DICOM SEG to rasterise"
    )
    parser.add_argument(
        "--roi",
        help="RTSTRUCT ROI name(s) or SEG segment label(s) / number(s); several joined by '+' "
        "give labels 1, 2, ... (a SEG without it: every segment, labelled by its number)",
    )
    parser.add_argument("--mask-out", type=Path, help="mask to write (.nii.gz, uint8)")
    parser.add_argument("--suv", action="store_true", help="PET: convert Bq/mL to SUVbw")
    cli.add_dicom_policy_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> int | None:
    if (args.mask is None) != (args.mask_out is None) or (args.roi and args.mask is None):
        raise ConversionError("--mask and --mask-out go together, and --roi needs them")
    roi_names = [r.strip() for r in args.roi.split("+")] if args.roi else []
    convert_dicom_series(
        args.series,
        args.out,
        args.sidecar,
        dicom_mask=args.mask,
        roi_names=roi_names,
        mask_out=args.mask_out,
        suv=args.suv,
        tilt=args.tilt,
        uneven_spacing=args.uneven_spacing,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
