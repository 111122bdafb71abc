"""A bad patient in a user cohort stops the whole run at validation, naming patient and file.

Uses the foundation's broken cohorts (tests/broken_cohorts.py) as the cohort of ``net_survival``
(radiomics, ComBat, Cox models on; pathomics off: one patient of these cohorts has a slide, and the
missing-input policy would refuse the others before validation) and runs the default target for
real: the run
must fail in ``validate_cohort`` with the patient and file in the error, and nothing downstream
(conversion, features, harmonization, training) may have been started.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from broken_cohorts import build_broken_cohort, build_valid_cohort
from conftest import run_snakemake

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> Path:
    return build_valid_cohort(tmp_path_factory.mktemp("valid") / "cohort")


@pytest.mark.parametrize("variant", ["empty_mask", "corrupt_nifti"])
def test_bad_patient_stops_the_run_at_validation(valid, variant, tmp_path):
    cohort, broken = build_broken_cohort(variant, tmp_path / "cohort", valid=valid)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["demo"]["enabled"] = False
    for name, study in config["studies"].items():
        study["enabled"] = name == "net_survival"
    study = config["studies"]["net_survival"]
    study.update(
        cohort=str(cohort),
        clinical=["age", "sex"],
        targets=["os_time", "os_event"],
        mask_labels=[1, 2],
        external_sites=[],
    )
    study["radiomics"].update(images=["CT_venous"], labels=[2])
    study["pathomics"] = False
    study["folds"]["repeats"] = 2
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    proc = run_snakemake(workdir, "--show-failed-logs")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Error in rule validate_cohort" in output
    problem = next(line for line in output.splitlines() if broken.phrase in line)
    assert broken.patient in problem
    assert Path(broken.file).name in problem
    results = workdir / "results"
    started = [p.relative_to(results) for p in results.rglob("*") if "qc" not in p.parts]
    assert started == []
    assert not (workdir / "logs/convert").exists()
