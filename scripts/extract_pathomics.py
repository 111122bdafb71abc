"""Extract per-slide pathomics features of one whole-slide image into a tidy CSV.

Tissue tiles of ``--tile-um`` µm are read at ``--target-mpp`` µm/px (from the best pyramid
level) and described by colour (H&E deconvolution), GLCM texture of hematoxylin, nuclei-like blob
density and size, and fibre orientation coherence / entropy; the CSV has one row per slide feature
(``<tile feature>_<mean|sd|q10|q50|q90>``) with ``value, n_tiles, mpp_used, level_used,
tile_px`` and the settings, led by ``patient_id`` when ``--patient`` is given.

``--mpp`` is the level-0 resolution (µm/px) of the slide: used when the slide has no µm/px
metadata (without it such a slide is an error); when the metadata exists and differs, the
metadata wins and a warning is logged. ``--target-mpp`` is the resolution the tiles are analysed
at.

Example:
    python scripts/extract_pathomics.py --slide demo/net_survival/images/NET001/tp0/WSI_HE.tif \
        --out NET001_pathomics.csv --tile-um 256 --target-mpp 0.5 --patient NET001
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.errors import FeatureError
from oncoflow.features._embed import ARCHS
from oncoflow.features.pathomics import extract_pathomics, write_pathomics


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slide", type=Path, required=True, help="slide file openslide opens")
    parser.add_argument("--out", type=Path, required=True, help="feature table to write (CSV)")
    parser.add_argument(
        "--tile-um", type=float, default=256.0, help="tile side in µm (default: %(default)s)"
    )
    parser.add_argument(
        "--mpp",
        type=float,
        default=None,
        help="level-0 µm per pixel of the slide, used when it has no resolution metadata",
    )
    parser.add_argument(
        "--target-mpp",
        type=float,
        default=0.5,
        help="µm per pixel the tiles are analysed at (default: %(default)s)",
    )
    parser.add_argument(
        "--max-tiles", type=int, default=None, help="at most this many tissue tiles (sampled)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the tile sampling (default: %(default)s)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="tile decoding threads; same result for any value (default: %(default)s)",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="local torchvision ResNet state dict: adds mean deep tile embeddings (no download)",
    )
    parser.add_argument(
        "--arch",
        choices=ARCHS,
        default="resnet18",
        help="ResNet architecture of --weights (default: %(default)s)",
    )
    parser.add_argument("--patient", default=None, help="patient ID written as patient_id")
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> int | None:
    try:
        table = extract_pathomics(
            args.slide,
            tile_um=args.tile_um,
            target_mpp=args.target_mpp,
            mpp=args.mpp,
            max_tiles=args.max_tiles,
            seed=args.seed,
            workers=args.workers,
            weights=args.weights,
            arch=args.arch,
        )
    except FeatureError as exc:
        if args.patient is None:
            raise
        raise FeatureError(f"patient {args.patient}: {exc}") from exc
    write_pathomics(table, args.out, patient_id=args.patient)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
