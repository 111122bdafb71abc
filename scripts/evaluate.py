"""Evaluate one model's predictions.csv: metrics with bootstrap CIs, and its model card.

Reads only the predictions (contract: ``docs/formats.md``; survival, binary or multi-class
classification, detected from the columns) and, for a segmentation model, its per-case Dice
table; for a new cohort (``--training``: its rows are split ``apply``) also the training run's
predictions, whose validation rows give what the ``apply`` split borrows from training. Writes
``metrics.json`` (per validation fold, pooled validation, each test split,
every metric with a patient-level bootstrap CI) and a model card as JSON and Markdown.

Example:
    python scripts/evaluate.py --predictions results/net_survival/train/raw/predictions.csv \
        --out results/net_survival/evaluate/raw/metrics.json \
        --card results/net_survival/evaluate/raw/model_card.md --study net_survival \
        --variant raw --horizons 365,730,1095 --n-boot 1000
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.evaluate.applied import evaluate_applied
from oncoflow.evaluate.card import card_markdown, model_card
from oncoflow.evaluate.engine import evaluate_predictions
from oncoflow.evaluate.segmentation import read_dice_table, summarize_dice
from oncoflow.formats import read_predictions


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _threshold(text: str) -> float | str:
    return text if text == "youden" else float(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=Path, required=True, help="predictions.csv")
    parser.add_argument("--out", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument(
        "--training",
        type=Path,
        default=None,
        help="score a new cohort (split apply, any kind): the training run's predictions.csv, "
        "whose validation rows give the decision threshold, the censoring distribution and "
        "the risk-group cut-off",
    )
    parser.add_argument("--card", type=Path, help="model card Markdown to write (+ .json beside)")
    parser.add_argument("--study", default="", help="study name (model card)")
    parser.add_argument("--variant", default="", help="model variant, e.g. raw (model card)")
    parser.add_argument("--model", default="", help="model family (model card)")
    parser.add_argument("--cohort", default="", help="cohort folder (model card)")
    parser.add_argument("--inputs", type=_names, default=[], help="model inputs (model card)")
    parser.add_argument("--targets", type=_names, default=[], help="targets (model card)")
    parser.add_argument(
        "--baselines", type=cli.labelled_path, nargs="*", default=[], metavar="LABEL=JSON",
        help="metrics.json of the study's tabular baselines, listed in the model card",
    )  # fmt: skip
    parser.add_argument(
        "--card-missing",
        type=cli.missing_decision,
        default=None,
        metavar="JSON",
        help="the study's missing-input decision (policy, dropped patients, imputed clinical "
        "columns, patients kept with fewer time points), shown in the model card",
    )
    parser.add_argument(
        "--horizons",
        type=lambda text: [float(v) for v in _names(text)],
        default=[365.0, 730.0, 1095.0],
        help="survival horizons in days (default: 365,730,1095)",
    )
    parser.add_argument(
        "--threshold",
        type=_threshold,
        default="youden",
        help="classification threshold: youden (from validation rows) or a number",
    )
    parser.add_argument(
        "--n-boot", type=int, default=1000, help="bootstrap replicates (default: 1000)"
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    parser.add_argument(
        "--segmentation",
        type=Path,
        help="per-case Dice CSV (nnunet_collect); adds Dice per region and split with CIs",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    predictions = read_predictions(args.predictions)
    boot = {"n_boot": args.n_boot, "seed": args.seed, "alpha": args.alpha}
    if args.training is not None:
        training = read_predictions(args.training)
        metrics = evaluate_applied(
            predictions, training, horizons=args.horizons, threshold=args.threshold, **boot
        )
    else:
        metrics = evaluate_predictions(
            predictions, horizons=args.horizons, threshold=args.threshold, **boot
        )
    if args.segmentation is not None:
        metrics["segmentation"] = summarize_dice(read_dice_table(args.segmentation), **boot)
    cli.write_json(args.out, metrics, args)
    if args.card is not None:
        info = {
            "study": args.study,
            "variant": args.variant,
            "model": args.model,
            "cohort": args.cohort,
            "inputs": args.inputs,
            "targets": args.targets,
            "seed": args.seed,
        }
        baselines = {label: json.loads(path.read_text()) for label, path in args.baselines}
        card = model_card(metrics, info, baselines, missing=args.card_missing)
        cli.write_json(args.card.with_suffix(".json"), card, args)
        cli.write_text(args.card, card_markdown(card))


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
