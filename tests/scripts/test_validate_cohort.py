"""scripts/validate_cohort.py: as a subprocess on every broken cohort, and through main([...])."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from broken_cohorts import (
    BROKEN,
    VALID_ARGS,
    build_broken_cohort,
    build_valid_cohort,
    cli_args,
    write_slide,
)
from conftest import REPO, load_script

SCRIPT = REPO / "scripts" / "validate_cohort.py"


def _run(cohort: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--cohort",
            str(cohort),
            "--out",
            str(cohort / "r.json"),
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:
    """Build the valid cohort and every broken variant, run the script on each (2 at a time)."""
    base = tmp_path_factory.mktemp("cohorts")
    valid = build_valid_cohort(base / "valid")
    jobs = {"valid": (valid, VALID_ARGS)}
    for name, broken in BROKEN.items():
        cohort, _ = build_broken_cohort(name, base / name, valid=valid)
        jobs[name] = (cohort, cli_args(broken.all_options()))
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run, *job) for name, job in jobs.items()}
        return {name: (jobs[name][0], future.result()) for name, future in futures.items()}


def test_valid_cohort_exits_zero(runs):
    cohort, proc = runs["valid"]
    assert proc.returncode == 0, proc.stderr
    assert "error:" not in proc.stderr
    report = json.loads((cohort / "r.json").read_text())
    assert report["ok"] is True
    assert report["n_patients"] == 4
    assert report["n_images"] == 6
    assert report["problems"] == []


def test_at_least_fourteen_broken_variants():
    assert len(BROKEN) >= 14


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_cohort_fails_with_one_clear_line(runs, name):
    broken = BROKEN[name]
    cohort, proc = runs[name]
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    line = errors[0]
    if broken.patient is not None:
        assert line.startswith(f"error: patient {broken.patient}: "), line
    assert f"{broken.file}: " in line, line
    assert broken.phrase in line, line
    report = json.loads((cohort / "r.json").read_text())
    assert report["ok"] is False
    assert [p["patient_id"] for p in report["problems"]] == [broken.patient]
    assert [p["file"] for p in report["problems"]] == [broken.file]


def test_main_writes_report_and_prints_every_problem(tmp_path, capsys):
    cohort = build_valid_cohort(tmp_path / "c")
    for name in ("missing_image", "event_value_2", "rtstruct_roi_absent"):
        BROKEN[name].mutate(cohort)
    out = tmp_path / "qc" / "deep" / "report.json"
    code = load_script("validate_cohort").main(
        ["--cohort", str(cohort), "--out", str(out), *VALID_ARGS, "--patient-label", "subject"]
    )
    assert code == 1
    errors = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error: ")]
    assert len(errors) == 3
    assert all(x.startswith("error: subject P00") for x in errors)
    report = json.loads(out.read_text())
    assert len(report["problems"]) == 3
    assert report["excluded"] == ["P002", "P003", "P004"]


def test_main_warning_only_exits_zero(tmp_path, capsys):
    cohort = build_valid_cohort(tmp_path / "c")
    write_slide(cohort / "slides" / "P001.tif", mpp=None)
    out = tmp_path / "report.json"
    code = load_script("validate_cohort").main(["--cohort", str(cohort), "--out", str(out)])
    assert code == 0
    err = capsys.readouterr().err
    assert "warning: patient P001: slides/P001.tif: slide has no µm/px metadata" in err
    report = json.loads(out.read_text())
    assert report["ok"] is True
    assert report["warnings"][0]["check"] == "slides"


def test_main_rejects_bad_options(tmp_path):
    script = load_script("validate_cohort")
    with pytest.raises(SystemExit) as info:
        script.main(["--cohort", str(tmp_path), "--out", "r.json", "--mask-labels", "1,x"])
    assert info.value.code == 2
    with pytest.raises(SystemExit):
        script.main(["--cohort", str(tmp_path), "--out", "r.json", "--tilt", "ignore"])


def test_main_missing_cohort_still_writes_report(tmp_path, capsys):
    out = tmp_path / "r.json"
    code = load_script("validate_cohort").main(["--cohort", str(tmp_path / "x"), "--out", str(out)])
    assert code == 1
    assert "cohort folder does not exist" in capsys.readouterr().err
    assert json.loads(out.read_text())["ok"] is False


def test_main_with_a_missing_decision_warns_of_imputation_and_records_it(tmp_path, capsys):
    cohort = build_valid_cohort(tmp_path / "c")
    BROKEN["nan_clinical"].mutate(cohort)
    out = tmp_path / "report.json"
    decision = {
        "policy": {"modalities": "drop_patient", "timepoints": "refuse", "clinical": "impute"},
        "dropped": {"P002": ["MR_T2 at time point 1"]},
        "imputed": {"age": ["P004"]},
        "partial": {},
    }
    argv = ["--cohort", str(cohort), "--out", str(out), *VALID_ARGS]
    script = load_script("validate_cohort")
    assert script.main(argv) == 1  # without the decision: the empty age is an error
    assert script.main([*argv, "--missing", json.dumps(decision)]) == 0
    err = capsys.readouterr().err
    assert "warning: patient P004: clinical.csv: line 5: required clinical field 'age'" in err
    assert "imputed with the median of each fold's training patients" in err
    report = json.loads(out.read_text())
    assert report["ok"] is True
    assert report["missing"] == decision
    with pytest.raises(SystemExit) as info:
        script.main([*argv, "--missing", "{not json"])
    assert info.value.code == 2
