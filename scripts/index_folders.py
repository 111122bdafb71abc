"""List a study's per-patient folders (files and sizes) in one JSON index.

Jobs that read every patient of a study (model training, nnU-Net export, the report) take this
one file as input instead of hundreds of folders, which keeps Snakemake's scheduler idle while
they wait (see ``oncoflow.batch``).

Example:
    python scripts/index_folders.py --folders results/liver_response/lesions/LR001 \
        results/liver_response/lesions/LR002 --out results/liver_response/lesions_index.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.batch import folder_index


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", type=Path, nargs="+", required=True, help="patient folders")
    parser.add_argument("--out", type=Path, required=True, help="index file (JSON)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    index = folder_index(args.folders)
    cli.write_json(args.out, index, args, sort_keys=True)
    cli.log.info("%d folders indexed in %s", len(index["folders"]), args.out)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
