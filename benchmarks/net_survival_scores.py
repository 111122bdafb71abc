"""Test C-indices of the net_survival models on the demo cohort against the generator's oracle.

Runs the workflow with only ``net_survival`` enabled (the science-scale config otherwise, as
``make demo-full``: demo seed, ``demo.study_patients.net_survival`` patients, radiomics +
pathomics + ComBat + negative control)
in a scratch folder - or reads an existing run with ``--workdir`` - and writes, per feature
variant (raw, combat, permuted), model and target, the C-index on the pooled test splits with
its bootstrap 95 % CI, next to the oracle C of the true linear predictor (``oracle.json``), to
``benchmarks/net_survival_scores.json``. The permuted variant is the negative control (mean of
``permutations`` outcome permutations; should sit at 0.5).

Usage:
    python benchmarks/net_survival_scores.py [--workdir DIR] [--cores 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STUDY = "net_survival"


def run_workflow(workdir: Path, cores: int) -> None:
    """Run net_survival alone at science scale (config.yaml + config/demo-full.yaml)."""
    from snakemake.utils import update_config

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config" / "demo-full.yaml").read_text()))
    for name, study in config["studies"].items():
        study["enabled"] = name == STUDY
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
        + ["--directory", str(workdir), "--cores", str(cores), "--quiet", "progress"],
        check=True,
    )


def collect(workdir: Path) -> dict:
    """Test C-index table of a finished run."""
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    oracle = json.loads((workdir / config["demo"]["out"] / STUDY / "oracle.json").read_text())
    table: dict[str, dict] = {}
    for metrics_file in sorted((workdir / "results" / STUDY / "train").glob("*/metrics.json")):
        metrics = json.loads(metrics_file.read_text())
        table[metrics_file.parent.name] = {
            model: {
                target: {
                    key: splits["test"][key]
                    for key in ("c_index", "ci_low", "ci_high", "n_patients", "n_events")
                }
                for target, splits in targets.items()
            }
            for model, targets in metrics["models"].items()
        }
    return {
        "study": STUDY,
        "demo": {"seed": config["demo"]["seed"], "patients": _patients(config)},
        "oracle_c_index": {target: entry["value"] for target, entry in oracle.items()},
        "test_c_index": table,
        "machine": platform.platform(),
    }


def _patients(config: dict) -> int:
    demo = config["demo"]
    return int(demo.get("study_patients", {}).get(STUDY, demo["patients"]))


def main(argv: Sequence[str] | None = None) -> int:
    """Run (or read) the workflow, write the JSON table and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None, help="read this finished run")
    parser.add_argument("--cores", type=int, default=2, help="cores of the run (default: 2)")
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "net_survival_scores.json"
    )
    args = parser.parse_args(argv)
    if args.workdir is None:
        with tempfile.TemporaryDirectory() as tmp:
            run_workflow(Path(tmp), args.cores)
            result = collect(Path(tmp))
    else:
        result = collect(args.workdir)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for variant, models in result["test_c_index"].items():
        for model, targets in models.items():
            cells = "  ".join(
                f"{t} {v['c_index']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"
                for t, v in targets.items()
            )
            print(f"{variant:9s} {model:19s} {cells}")
    print("oracle", result["oracle_c_index"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
