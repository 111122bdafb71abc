"""Confirmation run: the model studies on a fresh demo seed, nothing tuned on it.

Every default of the models was chosen on validation folds of the repository's demo seed. This
reruns the whole workflow on another seed (``demo.seed``) in a scratch folder and collects, per
study and target, the first-screen summary of the report (oncoflow.report.summary): the headline
model's test score with its 95 % CI, the oracle and the tabular oracle of the generator, the best
baseline, their paired difference with CI and p, and the permuted-label control.

Usage:
    python benchmarks/confirm.py --seed 7 [--cores 2] [--scale full] [--keep DIR]

Writes ``benchmarks/confirm_<seed>.json`` (rows + scale, seed, wall time) and
``benchmarks/confirm_<seed>.md`` (the same as a Markdown table). ``--scale full`` is the
science-scale profile of ``make demo-full`` (about 45 minutes on 2 cores); ``smoke`` the default
config.yaml (minutes; the figures are not meaningful at that size, it checks the machinery).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from oncoflow.report.summary import summary_markdown  # noqa: E402

SCALES = {"smoke": [], "full": [str(REPO / "config" / "demo-full.yaml")]}


def run_workflow(workdir: Path, seed: int, scale: str, cores: int) -> float:
    """The whole workflow on demo seed ``seed`` in ``workdir``; returns the wall seconds."""
    (workdir / "config.yaml").write_text((REPO / "config.yaml").read_text())
    (workdir / "seed.yaml").write_text(yaml.safe_dump({"demo": {"seed": seed}}))
    configs = [*SCALES[scale], str(workdir / "seed.yaml")]
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
    command += ["--directory", str(workdir), "--cores", str(cores), "--configfile", *configs]
    start = time.perf_counter()
    with (workdir / "snakemake.log").open("w") as log:
        proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = (workdir / "snakemake.log").read_text()[-3000:]
        msg = f"the workflow failed on seed {seed} in {workdir}:\n{tail}"
        raise SystemExit(msg)
    return time.perf_counter() - start


def collect(workdir: Path) -> list[dict]:
    """Every study's summary rows (results/report/<study>/summary.json), in study order."""
    rows = []
    for path in sorted((workdir / "results" / "report").glob("*/summary.json")):
        rows += json.loads(path.read_text())["rows"]
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the workflow on the seed, write confirm_<seed>.json and .md; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True, help="the fresh demo seed")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full", help="demo profile")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    parser.add_argument("--out-dir", type=Path, default=REPO / "benchmarks", help="output folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix=f"confirm_{args.seed}_") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        wall = run_workflow(workdir, args.seed, args.scale, args.cores)
        rows = collect(workdir)
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    result = {
        "seed": args.seed,
        "commit": commit,
        "scale": args.scale,
        "cores": args.cores,
        "wall_s": round(wall, 1),
        "command": f"python benchmarks/confirm.py --seed {args.seed} --scale {args.scale}",
        "rows": rows,
    }
    stem = args.out_dir / f"confirm_{args.seed}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    title = f"Demo seed {args.seed}, {args.scale} scale ({result['command']})\n\n"
    stem.with_suffix(".md").write_text(title + summary_markdown(rows))
    print(stem.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
