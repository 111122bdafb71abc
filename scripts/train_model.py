"""Train one fold of a deep model (cnn_lstm, a liver_response ladder rung, mm_dls).

Reads the study's lesion crops (``--lesions``, one folder per patient), the cohort's clinical and
outcome tables, ``folds.json`` / ``splits.csv`` and optional feature tables, trains the model on the
fold's training patients (an inner validation part of them selects the epoch) and writes
``model.pt``, ``history.csv``, ``predictions.csv`` (the fold's validation patients and every test
patient) and ``provenance.json`` into ``--out-dir``. Resume files live in ``--resume-dir``
(outside the rule's outputs): a killed job continues from its last epoch.

Example:
    python scripts/train_model.py --model relation_net --cohort resources/demo/liver_response \
        --folds results/liver_response/folds.json --splits results/liver_response/splits.csv \
        --lesions results/liver_response/lesions --fold 0 \
        --settings '{"stems": ["MR_T1", "MR_T2", "MR_T1V"], "epochs": 30}' \
        --out-dir results/liver_response/train/relation_net/fold_0 \
        --resume-dir results/liver_response/train/relation_net/resume/fold_0
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.deep.workflow import MODELS, run_fold


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help=f"model to train ({', '.join(MODELS)}, ...)")
    parser.add_argument(
        "--recipe",
        default="",
        help="the study's recipe: a built-in name or a recipe file (default: the model's recipe)",
    )
    parser.add_argument("--cohort", type=Path, required=True, help="cohort folder")
    parser.add_argument("--folds", type=Path, required=True, help="folds.json of the study")
    parser.add_argument("--splits", type=Path, required=True, help="splits.csv of the study")
    parser.add_argument("--lesions", type=Path, required=True, help="lesion crops folder")
    parser.add_argument("--fold", required=True, help="fold name in folds.json (0, 1, ...)")
    parser.add_argument("--settings", type=json.loads, default={}, help="model settings (JSON)")
    parser.add_argument(
        "--features",
        type=cli.labelled_path,
        nargs="*",
        default=[],
        help="per-patient feature tables as NAME=PATH (e.g. pet=results/s/features/pet.csv)",
    )
    parser.add_argument(
        "--inner-fraction", type=float, default=0.2, help="selection share (default: 0.2)"
    )
    parser.add_argument(
        "--converted", type=Path, default=None, help="converted images root (mm_dls lesion core)"
    )
    parser.add_argument("--permute", action="store_true", help="negative control: permute labels")
    parser.add_argument(
        "--permutations",
        type=int,
        default=1,
        help="negative-control runs with --permute, each its own permutation (default: 1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--out-dir", type=Path, required=True, help="fold output folder")
    parser.add_argument("--resume-dir", type=Path, required=True, help="resume files folder")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    _, summary = run_fold(
        model=args.model,
        recipe=args.recipe,
        settings=args.settings,
        cohort=args.cohort,
        folds=args.folds,
        splits=args.splits,
        lesions=args.lesions,
        fold=args.fold,
        out_dir=args.out_dir,
        resume_dir=args.resume_dir,
        features=cli.labelled_dict(args.features, "--features"),
        inner_fraction=args.inner_fraction,
        permute=args.permute,
        permutations=args.permutations,
        seed=args.seed,
        device=args.device,
        converted=args.converted,
    )
    cli.write_json(args.out_dir / "provenance.json", summary, args)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
