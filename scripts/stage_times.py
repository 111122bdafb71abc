"""Print how long each stage of a run took (from Snakemake's per-job benchmark files) and where
the report is; what ``make demo`` prints at the end.

Example:
    python scripts/stage_times.py --benchmarks logs/benchmarks --results results \
        --report results/report/index.html
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from oncoflow import cli
from oncoflow.performance import (
    BENCHMARKS,
    batch_items,
    format_table,
    read_benchmarks,
    stage_times,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--benchmarks", type=Path, default=BENCHMARKS, help="per-job benchmark files (folder)"
    )
    parser.add_argument("--results", type=Path, default=Path("results"), help="results folder")
    parser.add_argument("--report", type=Path, default=Path("results/report/index.html"))
    parser.add_argument("--since", type=float, default=0.0, help="ignore older files (epoch s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    jobs = read_benchmarks(args.benchmarks, since=args.since)
    if not jobs:
        print(f"no benchmark files under {args.benchmarks}")
        return
    print(format_table(stage_times(jobs, batch_items(args.results))))
    span = max(j.end for j in jobs) - min(j.start for j in jobs)
    print(f"\n{len(jobs)} jobs from the first start to the last end: {span:.0f} s")
    if args.report.exists():
        print(f"report: {args.report.resolve()}")


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
