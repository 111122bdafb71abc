"""Fidelity of the synthetic lung CTs against the real CTs of the held-out patients.

Only patients of the test splits are scored (the model never saw them). Per patient inside the
lung: MAE (HU), PSNR, SSIM, HU-histogram Wasserstein distance; over
patients: the standardised mean difference of the nodule's radiomics features (real vs synthetic).
Writes ``metrics.json`` (with the training summary) and the report's figures: a panel of
orthogonal slices (real above synthetic) and the training loss curve.

Example:
    python scripts/evaluate_ddpm.py --model results/lung_synthesis/ddpm/model.pt \
        --converted results/converted --samples results/lung_synthesis/ddpm/samples/*.nii.gz \
        --history results/lung_synthesis/ddpm/history.csv \
        --out results/lung_synthesis/ddpm/metrics.json --panel results/lung_synthesis/ddpm/panel.png
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from oncoflow import cli
from oncoflow.errors import OncoflowError
from oncoflow.report import figures
from oncoflow.splits import TEST_SPLITS
from oncoflow.synthesis.model import load_model
from oncoflow.synthesis.workflow import evaluate_samples, split_patients

PANEL_PATIENTS = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model.pt of train_ddpm.py")
    parser.add_argument("--converted", type=Path, required=True, help="converted images root")
    parser.add_argument("--samples", type=Path, nargs="+", required=True, help="<patient>.nii.gz")
    parser.add_argument(
        "--splits",
        type=Path,
        help="splits.csv: only test patients are scored (without it, every sample: a new cohort)",
    )
    parser.add_argument("--history", type=Path, required=True, help="history.csv of training")
    parser.add_argument("--stem", default="CT", help="image stem (default: %(default)s)")
    parser.add_argument("--out", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument("--panel", type=Path, required=True, help="slice panel PNG to write")
    parser.add_argument("--loss", type=Path, required=True, help="loss curve PNG to write")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    _, settings, info = load_model(args.model)
    samples = {path.name.removesuffix(".nii.gz"): path for path in args.samples}
    if args.splits is None:  # a new cohort (apply): nobody in it was trained on
        held_out = set(samples)
    else:
        held_out = set(split_patients(args.splits, TEST_SPLITS))
        leaked = sorted(held_out & set(info.get("patients", [])))
        if leaked:
            msg = f"test patient(s) {', '.join(leaked)} were in the diffusion model's training set"
            raise OncoflowError(msg)
    scored = {p: path for p, path in samples.items() if p in held_out}
    summary, panels = evaluate_samples(scored, args.converted, settings, args.stem)
    summary["n_samples_not_scored"] = len(samples) - len(scored)
    history = pd.read_csv(args.history)
    summary["training"] = {
        "steps": settings.train_steps,
        "patients": info.get("patients", []),
        "final_loss": float(history["loss"].iloc[-1]),
        "settings": settings.as_dict(),
    }
    cli.write_json(args.out, summary, args)
    title = f"real (upper) vs synthetic (lower), {settings.train_steps} training steps"
    png = figures.synthesis_panel(panels[:PANEL_PATIENTS], settings.window, title)
    loss = figures.loss_curve(history["step"], history["loss"], "diffusion training loss")
    for path, data in ((args.panel, png), (args.loss, loss)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
