"""Compare two result trees file by file (did a refactor change an output?) and write a report.

Tables and JSON are compared with a numeric tolerance, images and arrays by value, models and
figures by bytes (a model is judged by its predictions): see :mod:`oncoflow.treediff`. Prints a
summary and every differing file; writes the full report as JSON.

Example:
    python scripts/compare_results.py --a /tmp/before/results --b results \
        --out /tmp/compare.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.treediff import compare_trees


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, required=True, help="first results folder")
    parser.add_argument("--b", type=Path, required=True, help="second results folder")
    parser.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance (1e-6)")
    parser.add_argument("--atol", type=float, default=1e-9, help="absolute tolerance (1e-9)")
    parser.add_argument("--out", type=Path, default=None, help="JSON report (optional)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> int:
    report = compare_trees(args.a, args.b, rtol=args.rtol, atol=args.atol)
    print(", ".join(f"{k} {len(v)}" for k, v in report.items()))
    for path, detail in report["different"]:
        print(f"different: {path}: {detail}")
    for key in ("only_a", "only_b", "binary"):
        for path in report[key]:
            print(f"{key}: {path}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 1 if report["different"] or report["only_a"] or report["only_b"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
