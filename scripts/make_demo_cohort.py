"""Write the synthetic demo cohort: one folder per study with tables, images and oracle.json.

Example:
    python scripts/make_demo_cohort.py --out demo --seed 0 --patients 40
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import STUDIES, cli
from oncoflow.demo import MIN_PATIENTS, write_demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make_demo_cohort.py",
        description=(
            "Write DIR/<study>/{images,clinical,outcomes,splits}.csv, oracle.json and the images "
            "of the synthetic demo cohort (deterministic for a seed; mechanisms in docs/demo.md)."
        ),
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (DIR)")
    parser.add_argument("--seed", required=True, type=int, help="random seed (>= 0)")
    parser.add_argument(
        "--patients",
        type=int,
        default=40,
        help=f"patients per study (default 40, at least {MIN_PATIENTS})",
    )
    parser.add_argument(
        "--study",
        action="append",
        choices=STUDIES,
        metavar="NAME",
        help=f"study to write (repeatable; default: all of {', '.join(STUDIES)})",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> int | None:
    write_demo(args.out, seed=args.seed, patients=args.patients, studies=args.study)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
