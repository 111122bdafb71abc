"""Every script runs by hand with --help, and the entry points of ``docs/design.md`` exist."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.stem for p in (REPO / "scripts").glob("*.py"))
ENTRY_POINTS = {
    "make_demo_cohort": ["--out", "--seed", "--patients"],
    "validate_cohort": ["--cohort", "--out"],
    "convert_dicom": [
        "--series",
        "--out",
        "--sidecar",
        "--mask",
        "--rtstruct",
        "--roi",
        "--mask-out",
        "--suv",
    ],
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_help(name):
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / f"{name}.py"), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:")


@pytest.mark.parametrize(("name", "flags"), ENTRY_POINTS.items())
def test_entry_point_arguments(name, flags):
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / f"{name}.py"), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    for flag in flags:
        assert flag in proc.stdout, f"{name} lacks {flag}"


def test_qc_summary_merges(tmp_path):
    import json

    from conftest import load_script

    for study, ok, problems in (("a", True, []), ("b", False, [{"check": "x", "message": "m"}])):
        (tmp_path / study).mkdir()
        report = {"ok": ok, "n_patients": 3, "n_images": 5, "problems": problems}
        (tmp_path / study / "cohort_report.json").write_text(json.dumps(report))
    out = tmp_path / "merged.json"
    reports = [str(tmp_path / s / "cohort_report.json") for s in ("a", "b")]
    assert load_script("qc_summary").main(["--reports", *reports, "--out", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert merged["ok"] is False
    assert merged["n_patients"] == 6
    assert merged["n_images"] == 10
    assert merged["problems"] == [{"study": "b", "check": "x", "message": "m"}]
