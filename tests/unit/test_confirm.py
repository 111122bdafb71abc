"""benchmarks/confirm.py: a run of some studies replaces their rows and keeps the others'."""

from __future__ import annotations

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def confirm():
    return load_script("confirm", folder="benchmarks")


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


def test_collect_with_studies_merges_only_their_rows(confirm, tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(confirm, "render_readme", lambda seed, text: True)  # README untouched
    work = tmp_path / "work"
    for study, value in (("liver", 0.9), ("pancreas", 0.85), ("net", 0.6)):
        folder = work / "results" / "report" / study
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({"rows": [_row(study, value)]}))
    run = {"commit": "aaa", "command": "c1", "studies": ["liver", "pancreas"]}
    previous = {"seed": 5, "scale": "full", "runs": [run]}
    previous |= {"rows": [_row("liver", 0.7), _row("pancreas", 0.8)], "models_vs_baseline": []}
    (tmp_path / "confirm_5.json").write_text(json.dumps(previous))
    args = ["--seed", "5", "--collect", str(work), "--studies", "pancreas"]
    assert confirm.main([*args, "--out-dir", str(tmp_path)]) == 0
    out = json.loads((tmp_path / "confirm_5.json").read_text())
    # the kept workdir's other studies (liver, net) are not read; liver keeps its old row
    assert [(r["study"], r["value"]) for r in out["rows"]] == [("liver", 0.7), ("pancreas", 0.85)]
    assert out["runs"][-1]["studies"] == ["pancreas"]
    assert "--collect DIR --studies pancreas" in out["runs"][-1]["command"]
    # the run that trained the kept folder stays listed before the collect
    assert [r["command"] for r in out["runs"][:-1]] == ["c1"]
    only = {"commit": "ddd", "command": "c0", "studies": ["pancreas"]}
    (tmp_path / "confirm_5.json").write_text(json.dumps(previous | {"runs": [run, only]}))
    assert confirm.main([*args, "--out-dir", str(tmp_path)]) == 0
    out = json.loads((tmp_path / "confirm_5.json").read_text())
    assert [r["command"] for r in out["runs"][:-1]] == ["c1", "c0"]


def test_a_result_written_outside_benchmarks_leaves_the_readme_alone(
    confirm, tmp_path, monkeypatch
):
    rendered = []
    monkeypatch.setattr(confirm, "render_readme", lambda seed, text: rendered.append(seed))
    result = {"seed": 5, "scale": "full", "runs": [], "rows": [], "models_vs_baseline": []}
    assert confirm.write(tmp_path / "confirm_5", result) == 0
    assert (tmp_path / "confirm_5.json").is_file()
    assert rendered == []  # a scratch run's rows are not the committed file's
    monkeypatch.setattr(confirm, "REPO", tmp_path)
    (tmp_path / "benchmarks").mkdir()
    confirm.write(tmp_path / "benchmarks" / "confirm_5", result)
    assert rendered == [5]


def test_the_seed_of_a_kept_run_is_read_from_the_file_the_run_wrote(confirm, tmp_path):
    (tmp_path / confirm.SEED_FILE).write_text("demo:\n  seed: 7\n")
    assert confirm.kept_seed(tmp_path) == 7
    assert len(confirm.head_commit()) >= 7  # the short hash of this checkout's HEAD
