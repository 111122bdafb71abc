"""Extract pyradiomics features of one ROI with a versioned params YAML into a tidy CSV.

Writes ``--out`` (one row per feature: ``feature, value, image_type, feature_class, label,
settings_hash, params_file, pyradiomics_version``, led by ``patient_id`` / ``timepoint`` when
given) and, next to it, ``<out stem>.diagnostics.json`` with pyradiomics' diagnostics.

Example:
    python scripts/extract_radiomics.py --image results/converted/NET001/0/CT.nii.gz \
        --mask results/converted/NET001/0/CT_mask.nii.gz \
        --params params/radiomics/ct_default_v1.yaml --out NET001_radiomics.csv \
        --label 1 --patient NET001 --timepoint 0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.errors import FeatureError
from oncoflow.features.radiomics import (
    quiet_pyradiomics,
    run_extraction,
    write_diagnostics,
    write_features,
)


def diagnostics_path(out: Path) -> Path:
    """Where the diagnostics JSON of ``out`` goes: ``F.csv`` -> ``F.diagnostics.json``."""
    return out.with_name(out.name.removesuffix(".csv") + ".diagnostics.json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, required=True, help="intensity image (NIfTI)")
    parser.add_argument("--mask", type=Path, required=True, help="label map on the image grid")
    parser.add_argument(
        "--params",
        type=Path,
        required=True,
        help="pyradiomics params YAML, e.g. params/radiomics/ct_default_v1.yaml",
    )
    parser.add_argument("--out", type=Path, required=True, help="feature table to write (CSV)")
    parser.add_argument("--label", type=int, default=1, help="ROI label (default: %(default)s)")
    parser.add_argument("--patient", default=None, help="patient ID written as patient_id")
    parser.add_argument("--timepoint", type=int, default=None, help="timepoint written as column")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> int | None:
    quiet_pyradiomics(verbose=args.verbose)
    try:
        result = run_extraction(args.image, args.mask, params=args.params, label=args.label)
    except FeatureError as exc:
        if args.patient is None:
            raise
        raise FeatureError(f"patient {args.patient}: {exc}") from exc
    write_features(result.features, args.out, patient_id=args.patient, timepoint=args.timepoint)
    diagnostics = {**result.diagnostics, "provenance": args.provenance.as_dict()}
    write_diagnostics(diagnostics, diagnostics_path(args.out))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
