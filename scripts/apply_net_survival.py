"""Apply the saved net_survival Cox models to a new cohort (inference only, nothing refit).

Reads the final models saved by train_net_survival.py (``--models-out``), the new cohort's wide
feature CSVs (harmonised with the frozen ComBat when the models were trained on harmonised
features) and its ``clinical.csv`` (``outcomes.csv`` if present, to score the predictions).
Writes ``predictions.csv`` (``split = apply``, ``fold = final``) and a JSON summary naming the
model file and its SHA-256.

Example:
    python scripts/apply_net_survival.py --models results/net_survival/train/raw/models.pkl \
        --features radiomics=results/apply/site_d/net_survival/features/radiomics.csv \
                   pathomics=results/apply/site_d/net_survival/features/pathomics.csv \
        --cohort new_cohort/ --out results/apply/site_d/net_survival/raw/predictions.csv \
        --summary results/apply/site_d/net_survival/raw/apply.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.artefacts import load_artefact, sha256
from oncoflow.formats import write_predictions
from oncoflow.survival.apply import apply_net_survival, load_apply_inputs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="models.pkl of training")
    parser.add_argument(
        "--features",
        type=cli.labelled_path,
        nargs="+",
        default=[],
        metavar="BLOCK=CSV",
        help="the new cohort's feature tables: radiomics=R.csv pathomics=P.csv",
    )
    parser.add_argument("--cohort", type=Path, required=True, help="the new cohort's folder")
    parser.add_argument("--out", type=Path, required=True, help="predictions CSV to write")
    parser.add_argument("--summary", type=Path, required=True, help="summary JSON to write")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    blocks = cli.labelled_dict(args.features, "--features")
    models = load_artefact(args.models, kind="net_survival")
    features, outcomes = load_apply_inputs(args.cohort, blocks)
    predictions, summary = apply_net_survival(models, features, outcomes)
    summary["models_file"] = {"path": str(args.models), "sha256": sha256(args.models)}
    write_predictions(args.out, predictions)
    cli.write_json(args.summary, summary, args)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
