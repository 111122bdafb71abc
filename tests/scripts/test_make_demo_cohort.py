"""scripts/make_demo_cohort.py: writes the cohort folders; bad input gives one line, exit 1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, load_script

script = load_script("make_demo_cohort")


def test_writes_selected_studies(tmp_path: Path) -> None:
    rc = script.main(
        ["--out", str(tmp_path), "--seed", "2", "--patients", "8", "--study", "lung_synthesis",
         "--study", "liver_response"]
    )  # fmt: skip
    assert rc == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["liver_response", "lung_synthesis"]
    for study in ("liver_response", "lung_synthesis"):
        for name in ("images.csv", "clinical.csv", "outcomes.csv", "splits.csv", "oracle.json"):
            assert (tmp_path / study / name).is_file()
    images = pd.read_csv(tmp_path / "liver_response" / "images.csv")
    assert len(images) == 8 * 2 * 3
    assert all((tmp_path / "liver_response" / p).is_file() for p in images["path"])
    assert json.loads((tmp_path / "lung_synthesis" / "oracle.json").read_text()) == {}
    assert list(pd.read_csv(tmp_path / "lung_synthesis" / "outcomes.csv").columns) == ["patient_id"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--patients", "3"], "--patients must be >= 6"),
        (["--seed", "-4"], "--seed must be >= 0"),
    ],
)
def test_bad_input_gives_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    argv = ["--out", str(tmp_path / "d"), "--seed", "0", "--study", "lung_synthesis", *args]
    assert script.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: ")
    assert message in err[0]
    assert not (tmp_path / "d").exists()


def test_unknown_study_is_refused_by_argparse(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        script.main(["--out", str(tmp_path), "--seed", "0", "--study", "brain"])
    assert exc.value.code == 2


def test_help_runs_as_a_program() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_demo_cohort.py"), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "--patients" in result.stdout
