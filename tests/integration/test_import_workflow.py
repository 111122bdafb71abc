"""A study pointed at a DICOM tree (studies.<s>.import): import, validation and conversion run
in one Snakemake call, and no identifying header value reaches results/ or logs/."""

from __future__ import annotations

import json

import pandas as pd
import yaml
from conftest import REPO, run_snakemake

from oncoflow.demo.dicomtree import write_dicom_tree


def test_an_imported_study_validates_and_converts_without_leaking_identities(tmp_path):
    manifest = write_dicom_tree(tmp_path / "tree", seed=2)
    mrns = sorted(manifest["patients"])
    clinical = {"mrn": mrns, "age": 60, "sex": "F", "afp_pre": 10.0, "afp_post": 5.0}
    pd.DataFrame(clinical | {"dcp_pre": 20.0, "dcp_post": 9.0}).to_csv(
        tmp_path / "clinical.csv", index=False
    )
    outcomes = {"mrn": mrns, "response": [i % 2 for i in range(len(mrns))]}
    pd.DataFrame(outcomes).to_csv(tmp_path / "outcomes.csv", index=False)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["demo"]["enabled"] = False
    # a study that reads every image of a patient: the tree's patients do not all have the
    # three liver MR sequences, which liver_response's missing-input policy would refuse
    for name, study in config["studies"].items():
        study["enabled"] = name == "lung_synthesis"
    study = config["studies"]["lung_synthesis"]
    study["cohort"] = str(tmp_path / "cohort")
    study["import"] = {
        "dicom": str(tmp_path / "tree"),
        "key_file": str(tmp_path / "keys" / "study.key"),
        "clinical": str(tmp_path / "clinical.csv"),
        "outcomes": str(tmp_path / "outcomes.csv"),
        "id_column": "mrn",
    }
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake(run, "results/lung_synthesis/converted_index.json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((run / "results/qc/lung_synthesis/cohort_report.json").read_text())
    assert report["ok"], report["problems"]
    images = pd.read_csv(tmp_path / "cohort" / "images.csv")
    converted = sorted(p.name for p in (run / "results" / "converted").iterdir())
    assert converted == sorted(set(images["patient_id"]))
    assert (
        len(list((run / "results" / "converted").rglob("*_mask.nii.gz")))
        == images["mask_path"].notna().sum()
    )
    phi = {v for info in manifest["patients"].values() for v in info["phi"]}
    for folder in (run / "results", run / "logs"):
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for value in phi:
                    assert value.encode() not in data, (value, path)
