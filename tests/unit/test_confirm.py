"""benchmarks/confirm.py: a run of some studies replaces their rows and keeps the others'."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "confirm.py"


@pytest.fixture(scope="module")
def confirm():
    spec = importlib.util.spec_from_file_location("confirm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(study: str, value: float) -> dict:
    return {"study": study, "target": "y", "metric": "auc", "value": value}


def test_a_run_of_one_study_replaces_its_rows_and_keeps_the_others(confirm):
    old = {  # the layout of the files written before runs were listed
        "seed": 5,
        "scale": "full",
        "commit": "aaa",
        "cores": 2,
        "wall_s": 100.0,
        "command": "python benchmarks/confirm.py --seed 5 --studies liver pancreas",
        "studies": ["liver", "pancreas"],
        "collected_at": "bbb",
        "rows": [_row("liver", 0.7), _row("pancreas", 0.8)],
        "models_vs_baseline": [_row("liver", 0.01), _row("pancreas", 0.1)],
    }
    run = {"commit": "ccc", "cores": 2, "wall_s": 50.0, "command": "c2", "studies": ["liver"]}
    new = {"seed": 5, "scale": "full", "runs": [run], "rows": [_row("liver", 0.75)]}
    new["models_vs_baseline"] = [_row("liver", 0.05)]
    out = confirm.merged(old, new, ["liver"])
    assert [(r["study"], r["value"]) for r in out["rows"]] == [("pancreas", 0.8), ("liver", 0.75)]
    assert [r["value"] for r in out["models_vs_baseline"]] == [0.1, 0.05]
    assert [r["commit"] for r in out["runs"]] == ["aaa", "ccc"]
    assert out["runs"][0]["collected_at"] == "bbb"
    assert not {"commit", "command"} & out.keys()
    assert "(python benchmarks/confirm.py --seed 5 --studies liver pancreas; c2)" in (
        confirm.markdown(out | {"models_vs_baseline": []})
    )
    # rerunning every study of the old run drops it
    both = confirm.merged(
        old,
        new | {"runs": [run | {"studies": ["liver", "pancreas"]}]},
        [
            "liver",
            "pancreas",
        ],
    )
    assert [r["commit"] for r in both["runs"]] == ["ccc"]


def test_runs_of_another_scale_are_not_merged(confirm):
    old = {"seed": 5, "scale": "smoke", "runs": [], "rows": []}
    new = {"seed": 5, "scale": "full", "runs": [], "rows": [], "models_vs_baseline": []}
    with pytest.raises(SystemExit, match="scale smoke, this run full"):
        confirm.merged(old, new, ["liver"])
