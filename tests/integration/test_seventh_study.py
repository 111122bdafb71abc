"""A seventh study is one recipe file plus a config block: no edit to the rules or the workflow.

The recipe (``tests/recipes/toy_study.py``) declares a deep model of its own; the config block
points at the file and at the pancreas_progression demo cohort. The real workflow converts the
images, cuts the lesion crops, trains both folds with the recipe's trainer, joins them and scores
the model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import run_snakemake

REPO = Path(__file__).resolve().parents[2]
PATIENTS = 16

pytestmark = pytest.mark.slow


def _config(enable_toy: bool) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    source = config["studies"]["pancreas_progression"]
    for name, study in config["studies"].items():
        study["enabled"] = name == "pancreas_progression" and not enable_toy
    config["demo"]["patients"] = PATIENTS
    config["demo"]["study_patients"] = {}
    if enable_toy:
        config["studies"]["toy_study"] = {
            "recipe": "toy_study.py",
            "cohort": source["cohort"],
            "model": "toy_logistic",
            "modalities": ["CT"],
            "targets": source["targets"],
            "mask_labels": source["mask_labels"],
            "external_sites": source["external_sites"],
            "lesions": source["lesions"],
            "stratify": source["stratify"],
            "folds": {"k": 2},
            "train": {"epochs": 30},
        }
    return config


def test_a_toy_recipe_file_runs_through_the_shared_stages(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_config(False), sort_keys=False))
    proc = run_snakemake(tmp_path, "results/qc/pancreas_progression/cohort_report.json")
    assert proc.returncode == 0, proc.stderr[-4000:]

    shutil.copy(REPO / "tests/recipes/toy_study.py", tmp_path / "toy_study.py")
    config.write_text(yaml.safe_dump(_config(True), sort_keys=False))
    target = "results/toy_study/evaluate/toy_logistic/metrics.json"
    proc = run_snakemake(tmp_path, target)
    assert proc.returncode == 0, proc.stderr[-4000:]

    folds = json.loads((tmp_path / "results/toy_study/folds.json").read_text())
    rows = pd.read_csv(tmp_path / "results/toy_study/train/toy_logistic/predictions.csv")
    validation = rows[rows["split"] == "validation"]
    cv = [f["apply"] for name, f in folds["folds"].items() if name != "final"]
    assert sorted(validation["patient_id"]) == sorted(p for apply in cv for p in apply)
    assert set(rows["split"]) == {"validation", "internal_test", "external_test"}
    assert rows["y_score"].between(0, 1).all()
    provenance = json.loads(
        (tmp_path / "results/toy_study/train/toy_logistic/fold_0/provenance.json").read_text()
    )
    assert provenance["model"] == "toy_logistic"
    assert provenance["settings"]["epochs"] == 30
    assert json.loads((tmp_path / target).read_text())["kind"] == "binary"
