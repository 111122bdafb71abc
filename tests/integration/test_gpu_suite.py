"""The GPU suite keeps working without a GPU: its tiny CPU configuration end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import snakemake_env

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_the_tiny_suite_measures_every_part_and_renders_the_table(tmp_path):
    out = tmp_path / "suite.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/gpu_suite.py"), "--tiny", "--work",
         str(tmp_path / "work"), "--out", str(out), "--cores", "2"],
        capture_output=True, text=True, env=snakemake_env(), check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["tiny"] is True
    nnunet = result["nnunet"]
    assert len(nnunet["epoch_times_s"]) == 2
    assert nnunet["seconds_per_epoch"] > 0
    assert nnunet["peak_memory_mib"] > 0
    assert nnunet["projected_production_hours"] > 0
    assert set(nnunet["dice"]) == {"lesion", "whole_pancreas"}
    assert set(nnunet["subtype"]) == {"internal_test", "external_test"}
    assert set(result["loader"]) == {"32", "48"}
    assert all(row["ratio"] > 0 for row in result["loader"].values())
    assert result["ddpm"]["ddim_seconds_per_sample"] > 0
    readme = tmp_path / "README.md"
    shutil.copy(REPO / "README.md", readme)
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks/gpu_suite.py"), "--render-only", "--out",
         str(out), "--readme", str(readme)],
        check=True, env=snakemake_env(),
    )  # fmt: skip
    text = readme.read_text()
    assert "the tiny CPU configuration, a check of the suite, not a measurement" in text
    assert "| liver loader, 48 px |" in text
