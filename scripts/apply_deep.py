"""Apply a deep model's trained fold models to a new cohort (inference only, nothing refit).

Reads every ``fold_<k>/model.pt`` of one variant (encoders, standardisation, weights), the new
cohort's lesion crops (``--lesions``, the lesions stage of ``apply``), ``clinical.csv`` (and
``outcomes.csv`` when present, to score the predictions) and its feature tables, and writes the
fold models' mean scores as ``predictions.csv`` (``split = apply``, ``fold = final``) with a JSON
summary naming each model file and its SHA-256.

Example:
    python scripts/apply_deep.py --recipe liver_response \
        --models results/liver_response/train/relation_net/fold_*/model.pt \
        --cohort hospital_b/liver_response --lesions results/apply/b/liver_response/lesions \
        --out results/apply/b/liver_response/predict/relation_net/predictions.csv \
        --summary results/apply/b/liver_response/predict/relation_net/apply.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.deep.apply import apply_deep_model
from oncoflow.formats import write_predictions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", required=True, help="the study's recipe (name or file)")
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="fold model.pt files")
    parser.add_argument("--cohort", type=Path, required=True, help="the new cohort's folder")
    parser.add_argument("--lesions", type=Path, required=True, help="its lesion crops folder")
    parser.add_argument(
        "--features",
        type=cli.labelled_path,
        nargs="*",
        default=[],
        help="its per-patient feature tables as NAME=PATH (e.g. pet=.../features/pet.csv)",
    )
    parser.add_argument(
        "--converted", type=Path, default=None, help="its converted images (mm_dls lesion core)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    parser.add_argument("--out", type=Path, required=True, help="predictions CSV to write")
    parser.add_argument("--summary", type=Path, required=True, help="summary JSON to write")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    predictions, summary = apply_deep_model(
        args.models,
        recipe=args.recipe,
        cohort=args.cohort,
        lesions=args.lesions,
        features=cli.labelled_dict(args.features, "--features"),
        converted=args.converted,
        device=args.device,
    )
    write_predictions(args.out, predictions)
    cli.write_json(args.summary, summary, args)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
