"""Synthesise a lung CT for one patient's lung/nodule masks with the trained diffusion model.

With ``--anatomy-preserving`` (default) only the lung and nodule are generated: outside them the
sample is replaced at every step by the patient's real CT noised to the same level, and by the
real CT at the end. The sample is written as NIfTI (HU) on the real image's grid (affine, shape).

Example:
    python scripts/sample_ddpm.py --model results/lung_synthesis/ddpm/model.pt \
        --converted results/converted --patient LS005 \
        --out results/lung_synthesis/ddpm/samples/LS005.nii.gz
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.synthesis.data import write_nifti
from oncoflow.synthesis.model import load_model
from oncoflow.synthesis.workflow import read_case, synthesize


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model.pt of train_ddpm.py")
    parser.add_argument("--converted", type=Path, required=True, help="converted images root")
    parser.add_argument("--patient", required=True, help="patient whose masks condition")
    parser.add_argument("--stem", default="CT", help="image stem (default: %(default)s)")
    parser.add_argument(
        "--anatomy-preserving",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="generate only the lung; the rest is the real CT (default: on)",
    )
    parser.add_argument("--ddim-steps", type=int, default=None, help="DDIM with this many steps")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    parser.add_argument("--out", type=Path, required=True, help="sample NIfTI to write")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    model, settings, _ = load_model(args.model)
    case = read_case(args.converted, args.patient, settings, args.stem)
    volume = synthesize(
        model,
        settings,
        case,
        anatomy_preserving=args.anatomy_preserving,
        ddim_steps=args.ddim_steps,
        seed=args.seed,
        device=args.device,
    )
    write_nifti(volume, case, args.out)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
