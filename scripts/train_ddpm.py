"""Train the lung_synthesis diffusion model on the training patients' CT and lung/nodule masks.

Reads the converted baseline CT (``<converted>/<patient>/0/<stem>.nii.gz`` + ``_mask``) of every
patient of the ``train`` split, trains the mask-conditioned 3D DDPM (settings JSON: see
``oncoflow.synthesis.model.DDPMSettings``) and writes ``model.pt`` (EMA weights + settings),
``history.csv`` and a JSON summary. A resume file (``--resume``, outside the rule's outputs) is
written every ``checkpoint_every`` steps; a killed job restarts from it.

Example:
    python scripts/train_ddpm.py --converted results/converted \
        --splits results/lung_synthesis/splits.csv --settings '{"train_steps": 400}' \
        --resume results/lung_synthesis/ddpm/resume.pt \
        --out results/lung_synthesis/ddpm/model.pt \
        --history results/lung_synthesis/ddpm/history.csv \
        --summary results/lung_synthesis/ddpm/train.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.synthesis.model import DDPMSettings, save_model, train_ddpm
from oncoflow.synthesis.workflow import split_patients, training_inputs
from oncoflow.train import resolve_device


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--converted", type=Path, required=True, help="converted images root")
    parser.add_argument("--splits", type=Path, required=True, help="splits.csv of the study")
    parser.add_argument("--stem", default="CT", help="image stem (default: %(default)s)")
    parser.add_argument("--settings", type=json.loads, default={}, help="DDPM settings (JSON)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    parser.add_argument("--resume", type=Path, default=None, help="resume file")
    parser.add_argument("--out", type=Path, required=True, help="model.pt to write")
    parser.add_argument("--history", type=Path, required=True, help="history.csv to write")
    parser.add_argument("--summary", type=Path, required=True, help="summary JSON to write")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    settings = DDPMSettings.from_mapping({"seed": args.seed, **args.settings})
    patients = split_patients(args.splits, ["train"])
    images, conditions = training_inputs(args.converted, patients, settings, args.stem)
    model, rows = train_ddpm(
        images, conditions, settings, resume=args.resume, device=args.device, history=args.history
    )
    save_model(args.out, model, settings, patients=patients)
    summary = {
        "patients": patients,
        "device": str(resolve_device(args.device)),
        "settings": settings.as_dict(),
        "steps": settings.train_steps,
        "final_loss": rows[-1]["loss"] if rows else None,
        "seconds": rows[-1]["seconds"] if rows else None,
    }
    cli.write_json(args.summary, summary, args)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
