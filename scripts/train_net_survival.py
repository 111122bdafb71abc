"""Train the net_survival Cox models (radiomics, pathomics, clinical and combinations) for OS / PFS.

Reads wide feature CSVs (``patient_id`` + one column per feature) and the cohort's
``clinical.csv``, ``outcomes.csv`` (``os_time, os_event, pfs_time, pfs_event``; event 1 = death /
progression happened) and ``splits.csv``. Writes ``predictions.csv`` (``patient_id, split, fold,
target, time, event, risk, model``) and a JSON summary with C-indices and bootstrap 95 % CIs.

Example:
    python scripts/train_net_survival.py \
        --features radiomics=results/net_survival/features/radiomics.csv \
                   pathomics=results/net_survival/features/pathomics.csv \
        --cohort demo/net_survival --out results/net_survival/train/predictions.csv \
        --summary results/net_survival/train/metrics.json --repeats 5 --seed 0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.artefacts import save_artefact
from oncoflow.errors import OncoflowError
from oncoflow.formats import read_folds, write_predictions
from oncoflow.survival.inputs import load_fold_features, load_inputs
from oncoflow.survival.protocol import MODEL_SETS, run_net_survival
from oncoflow.survival.summary import summarize


def _feature_file(text: str) -> tuple[str, Path]:
    block, sep, path = text.partition("=")
    if not sep or not block or not path:
        msg = f"expected BLOCK=PATH (e.g. radiomics=R.csv), got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return block.strip(), Path(path)


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--features",
        type=_feature_file,
        nargs="+",
        default=[],
        metavar="BLOCK=CSV",
        help="feature tables: radiomics=R.csv pathomics=P.csv",
    )
    parser.add_argument("--cohort", type=Path, required=True, help="cohort folder")
    parser.add_argument("--out", type=Path, required=True, help="predictions CSV to write")
    parser.add_argument("--summary", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument(
        "--models-out",
        type=Path,
        default=None,
        help="save the final models (fit on all training patients) here, for apply",
    )
    parser.add_argument("--targets", type=_names, default=["os", "pfs"], help="default: os,pfs")
    parser.add_argument(
        "--models",
        type=_names,
        default=None,
        help=f"model sets (default: all available of {','.join(MODEL_SETS)})",
    )
    parser.add_argument("--repeats", type=int, default=5, help="fit/holdout draws (default: 5)")
    parser.add_argument("--holdout", type=float, default=0.3, help="holdout share (default: 0.3)")
    parser.add_argument("--inner-folds", type=int, default=3, help="inner CV folds (default: 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="worker processes over targets x permutations; results do not depend on it",
    )
    parser.add_argument(
        "--folds",
        type=Path,
        default=None,
        help="folds.json (scripts/make_folds.py) to use instead of drawing --repeats folds",
    )
    parser.add_argument(
        "--harmonized",
        type=Path,
        default=None,
        help="folder of per-fold ComBat tables <DIR>/<block>/<fold>.csv (needs --folds)",
    )
    parser.add_argument(
        "--splits",
        type=Path,
        default=None,
        help="splits.csv to use instead of the cohort's (e.g. results/<study>/splits.csv)",
    )
    parser.add_argument(
        "--permute", action="store_true", help="permute training outcomes (negative control)"
    )
    parser.add_argument(
        "--permutations",
        type=int,
        default=5,
        help="independent permutations with --permute, scored by their mean C (default: 5)",
    )
    parser.add_argument(
        "--keep-clinical",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep every clinical column in the combined models (clinical+radiomics, ...), "
        "unfiltered and outside k (default); --no-keep-clinical lets the in-fold selection drop "
        "them like any feature",
    )
    parser.add_argument(
        "--horizons",
        type=lambda text: [float(v) for v in _names(text)],
        default=[],
        help="days at which to predict survival probabilities, e.g. 365,730,1095 (default: none)",
    )
    parser.add_argument(
        "--n-boot", type=int, default=1000, help="bootstrap replicates (default: 1000)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    blocks = cli.labelled_dict(args.features, "--features")
    features, outcomes, splits, oracle = load_inputs(args.cohort, blocks, splits=args.splits)
    folds = read_folds(args.folds) if args.folds is not None else None
    fold_features = None
    if args.harmonized is not None:
        if folds is None:
            msg = "--harmonized needs --folds (the folds the tables were fit on)"
            raise OncoflowError(msg)
        fold_features = load_fold_features(args.harmonized, blocks, folds)
    predictions, models = run_net_survival(
        features,
        outcomes,
        splits,
        targets=args.targets,
        repeats=args.repeats,
        holdout=args.holdout,
        inner_folds=args.inner_folds,
        seed=args.seed,
        permute=args.permute,
        permutations=args.permutations,
        models=args.models,
        keep_clinical=args.keep_clinical,
        folds=folds,
        fold_features=fold_features,
        n_jobs=args.threads,
        horizons=args.horizons,
        return_models=True,
    )
    summary = summarize(predictions, oracle, n_boot=args.n_boot, seed=args.seed)
    summary["permuted"] = bool(args.permute)
    summary["harmonized"] = args.harmonized is not None
    write_predictions(args.out, predictions)
    cli.write_json(args.summary, summary, args)
    if args.models_out is not None:
        save_artefact(args.models_out, models, kind="net_survival")


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
