"""How many permuted-label runs a study's negative control needs, from validation rows only.

The report's control figure is the mean over runs of the permuted model's test score (issue 23:
it should sit within 0.07 of chance). A permuted model still reads its inputs; where they nearly
decide the label (the demo's nsclc stage follows tumour size), each run's score is a monotone
function of them with a random sign, so one run lands far from chance (per-class AUCs of 0.01 and
0.99 occur) and a few runs average badly. This sizes the number of runs ``R`` so that the mean
over runs is within ``h`` = 0.07 of its expectation with 95 % probability:

    R = ceil((z * s / h)^2),  z = 1.96,

where ``s`` is the standard deviation between runs of one fold model's validation score (the
fold's validation patients scored by that run's model of the fold; AUC, macro AUC or Harrell's C,
the metric the report ranks by), pooled within (seed, fold) over kept runs (``confirm.py --keep
DIR``): ``s^2 = sum_g (n_g - 1) s_g^2 / sum_g (n_g - 1)``. The study's ``R`` is the largest over
its targets, and at least 2 (a mean over runs needs two for its spread). Test rows are never read.

Why per fold, not pooled over the folds: a run's test score is that of its fold ensemble, one
ranking (the mean of five random functions is one random function), whose sign with respect to
the label is as random as a single fold model's. The pooled validation score mixes five fold
models that each drew their own sign, so it lands nearer chance and understates the spread
(liver_response: s = 0.064 pooled against 0.15 per fold, while the test scores of single runs
scattered from 0.27 to 0.80). A fold's validation set is a fifth of the patients, so its
sampling noise errs on the side of more runs.

Usage:
    python benchmarks/control_runs.py --study nsclc_mmdls --workdir DIR [DIR ...]

Writes ``benchmarks/control_runs_<study>.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

sys.path.insert(0, str(REPO / "benchmarks"))

from confirm import head_commit, kept_seed  # noqa: E402

from oncoflow import dag  # noqa: E402
from oncoflow.errors import ModelError  # noqa: E402
from oncoflow.evaluate.engine import prediction_kind, ranking_score  # noqa: E402
from oncoflow.report.models import MAIN_METRIC  # noqa: E402

HALF_WIDTH = 0.07
"""Issue 23: a control within 0.07 of chance."""
Z = 1.96
"""Two-sided 95 % normal quantile."""


def run_scores(predictions: pd.DataFrame) -> dict[str, dict]:
    """Per target: its kind, metric and, per fold, each run's validation score (runs in order).

    A fold and run whose validation rows cannot be scored (one class only) is left out.

    Args:
        predictions: A negative control's ``predictions.csv`` (``permutation`` column).
    """
    validation = predictions[predictions["split"] == "validation"]
    out = {}
    for target, rows in validation.groupby("target", sort=True):
        rows = rows.dropna(axis=1, how="all")
        kind = prediction_kind(list(rows.columns))
        folds: dict[str, list[float]] = {}
        for fold, part in rows.groupby("fold", sort=True):
            scores = []
            for _, run in part.groupby("permutation", sort=True):
                try:
                    scores.append(ranking_score(run, kind))
                except ModelError:
                    continue
            folds[str(fold)] = scores
        out[str(target)] = {"kind": kind, "metric": MAIN_METRIC[kind], "folds": folds}
    return out


def pooled_sd(groups: Sequence[Sequence[float]]) -> float:
    """Within-group standard deviation pooled over groups (seed and fold) of run scores."""
    dof = sum(max(len(g) - 1, 0) for g in groups)
    if dof < 1:
        raise ValueError("need at least one group with two runs")
    return math.sqrt(
        sum((len(g) - 1) * float(np.var(g, ddof=1)) for g in groups if len(g) > 1) / dof
    )


def runs_needed(sd: float, half_width: float = HALF_WIDTH, z: float = Z) -> int:
    """``ceil((z sd / h)^2)``, at least 2: runs whose mean is within ``h`` with 95 % probability."""
    return max(2, math.ceil((z * sd / half_width) ** 2))


def sizing(per_seed: Mapping[int, Mapping[str, dict]]) -> dict:
    """Per target the SD pooled within (seed, fold) and ``R``; the study's ``R`` (largest)."""
    targets = sorted({t for scores in per_seed.values() for t in scores})
    out: dict = {"targets": {}}
    for target in targets:
        groups = [
            runs for s in per_seed.values() if target in s for runs in s[target]["folds"].values()
        ]
        sd = pooled_sd(groups)
        out["targets"][target] = {
            "sd_between_runs": round(sd, 4),
            "dof": sum(max(len(g) - 1, 0) for g in groups),
            "runs_needed": runs_needed(sd),
        }
    out["runs_needed"] = max(t["runs_needed"] for t in out["targets"].values())
    return out


def main(argv: list[str] | None = None) -> int:
    """Read each kept run's control, size ``R``, write control_runs_<study>.json; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True)
    parser.add_argument("--workdir", type=Path, nargs="+", required=True, help="kept runs")
    parser.add_argument("--out-dir", type=Path, default=REPO / "benchmarks")
    args = parser.parse_args(argv)
    per_seed = {}
    for workdir in args.workdir:
        path = workdir / dag.fill(dag.PREDICTIONS, study=args.study, variant="permuted")
        per_seed[kept_seed(workdir)] = run_scores(pd.read_csv(path))
    result = {
        "study": args.study,
        "commit": head_commit(),
        "command": f"python benchmarks/control_runs.py --study {args.study} --workdir "
        + " ".join(f"DIR_{seed}" for seed in per_seed),
        "half_width": HALF_WIDTH,
        "z": Z,
        "seeds": {str(seed): scores for seed, scores in per_seed.items()},
        **sizing(per_seed),
    }
    out = args.out_dir / f"control_runs_{args.study}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("targets", "runs_needed")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
