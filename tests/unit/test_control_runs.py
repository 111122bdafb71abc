"""benchmarks/control_runs.py: per-run validation scores, their pooled spread, the runs needed."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import load_script


@pytest.fixture(scope="module")
def control():
    return load_script("control_runs", folder="benchmarks")


def _control_table(runs: int, n: int = 120, seed: int = 0, folds: int = 2) -> pd.DataFrame:
    """A permuted control of a binary, a survival and a 3-class target; test rows carry signal."""
    rng = np.random.default_rng(seed)
    frames = []
    for run in range(runs):
        size = rng.normal(size=n)
        fold = np.arange(n) % folds
        # a permuted model: a function of size whose sign each fold model draws on its own
        sign = rng.choice([-1.0, 1.0], size=folds)[fold]
        split = np.where(np.arange(n) < n // 2, "validation", "internal_test")
        y = (size > 0).astype(int)
        base = {
            "patient_id": [f"P{i}" for i in range(n)],
            "split": split,
            "fold": fold,
            "permutation": run,
        }
        frames.append(
            pd.DataFrame({**base, "target": "response", "y_true": y, "y_score": sign * size})
        )
        time = np.exp(-size) * 100
        frames.append(
            pd.DataFrame(
                {**base, "target": "os", "time": time, "event": 1, "risk": sign * size + 0.0}
            )
        )
        stage = np.digitize(size, [-0.5, 0.5])
        scores = np.stack([sign * size, -sign * size, np.zeros(n)], axis=1)
        frames.append(
            pd.DataFrame(
                {
                    **base,
                    "target": "stage",
                    "y_true": np.array(["I", "II", "III"])[stage],
                    **{f"y_score_{c}": scores[:, i] for i, c in enumerate(["I", "II", "III"])},
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_each_fold_model_of_each_run_is_scored_on_its_validation_rows(control):
    table = _control_table(runs=4)
    # test rows made uninformative: exact 0 or 1 below means only validation rows were read
    table.loc[table["split"] == "internal_test", "y_score"] = 0.0
    scores = control.run_scores(table)
    assert set(scores) == {"os", "response", "stage"}
    assert scores["response"]["metric"] == "auc"
    assert scores["os"]["metric"] == "harrell_c"
    assert scores["stage"]["metric"] == "auc_macro"
    for target in ("response", "os"):
        # a deterministic function of the deciding input: each fold model of each run at 0 or 1
        folds = scores[target]["folds"]
        assert set(folds) == {"0", "1"}
        assert all(len(runs) == 4 for runs in folds.values())
        assert all(min(s, 1 - s) < 1e-9 for runs in folds.values() for s in runs)


def test_the_spread_of_one_fold_model_is_not_averaged_away_by_pooling_the_folds(control):
    table = _control_table(runs=8, n=400, seed=3, folds=5)
    result = control.sizing({1: control.run_scores(table)})
    # each fold model is right or exactly wrong: SD ~0.5, far more runs than a pooled score asks
    per_fold = result["targets"]["response"]["sd_between_runs"]
    assert per_fold > 0.4
    assert result["runs_needed"] > 100
    # the score pooled over the five folds mixes their signs and spreads far less
    validation = table[(table["split"] == "validation") & (table["target"] == "response")]
    pooled = [control.ranking_score(run, "binary") for _, run in validation.groupby("permutation")]
    assert float(np.std(pooled, ddof=1)) < 0.75 * per_fold


def test_the_spread_is_pooled_within_seeds_and_sizes_the_runs(control):
    assert control.pooled_sd([[0.4, 0.6], [0.5, 0.5, 0.5]]) == pytest.approx(math.sqrt(0.02 / 3))
    with pytest.raises(ValueError):
        control.pooled_sd([[0.5]])
    assert control.runs_needed(0.0938) == 7  # (1.96 * 0.0938 / 0.07)^2 = 6.9
    assert control.runs_needed(0.0737) == 5
    assert control.runs_needed(0.0) == 2
    result = control.sizing(
        {
            1: {"a": {"folds": {"0": [0.4, 0.6, 0.5]}}},
            2: {"a": {"folds": {"0": [0.5, 0.52], "1": [0.5]}}, "b": {"folds": {"0": [0.1, 0.9]}}},
        }
    )
    assert result["targets"]["a"]["dof"] == 3
    assert result["runs_needed"] == result["targets"]["b"]["runs_needed"] > 100


def test_the_command_reads_kept_runs_and_writes_the_study_file(control, tmp_path):
    for seed in (5, 7):
        workdir = tmp_path / f"run{seed}"
        train = workdir / "results" / "toy" / "train" / "permuted"
        train.mkdir(parents=True)
        _control_table(runs=3, seed=seed).to_csv(train / "predictions.csv", index=False)
        (workdir / "seed.yaml").write_text(yaml.safe_dump({"demo": {"seed": seed}}))
    out = tmp_path / "out"
    out.mkdir()
    argv = ["--study", "toy", "--out-dir", str(out), "--workdir"]
    assert control.main([*argv, str(tmp_path / "run5"), str(tmp_path / "run7")]) == 0
    written = json.loads((out / "control_runs_toy.json").read_text())
    assert set(written["seeds"]) == {"5", "7"}
    assert written["targets"]["response"]["dof"] == 8  # 2 seeds x 2 folds x (3 runs - 1)
    assert written["runs_needed"] == max(t["runs_needed"] for t in written["targets"].values())
