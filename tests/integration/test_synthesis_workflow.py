"""lung_synthesis through the workflow: train_ddpm -> sample_ddpm -> evaluate_ddpm -> report, on a
small demo with CPU-sized settings."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import run_snakemake as snakemake
from conftest import snakemake_env

REPO = Path(__file__).resolve().parents[2]
PATIENTS = 8

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("synthesis_run")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for name, study in config["studies"].items():
        study["enabled"] = name == "lung_synthesis"
    config["demo"]["patients"] = PATIENTS
    config["demo"]["study_patients"] = {}
    model = config["studies"]["lung_synthesis"]["ddpm"]["model"]
    model.update(size=[16, 16, 16], steps=20, channel_mult=[1, 2], attention_levels=[1],
                 train_steps=40, checkpoint_every=20, ema_start=10)  # fmt: skip
    config["studies"]["lung_synthesis"]["ddpm"]["sampling"]["ddim_steps"] = 10
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    proc = snakemake(workdir, "--show-failed-logs")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return workdir


def test_model_is_trained_on_training_patients_only(run):
    splits = pd.read_csv(run / "results/lung_synthesis/splits.csv")
    train = sorted(splits.loc[splits["split"] == "train", "patient_id"])
    summary = json.loads((run / "results/lung_synthesis/ddpm/train.json").read_text())
    assert summary["patients"] == train
    assert summary["steps"] == 40
    history = pd.read_csv(run / "results/lung_synthesis/ddpm/history.csv")
    assert history["step"].iloc[-1] == 40
    assert (run / "results/lung_synthesis/ddpm/resume.pt").is_file()  # kept for a restart


def test_samples_are_nifti_on_the_real_grid_with_the_real_body(run):
    images = pd.read_csv(run / "resources/demo/lung_synthesis/images.csv")
    for patient in images["patient_id"]:
        real = nib.load(run / f"results/converted/{patient}/0/CT.nii.gz")
        labels = np.asarray(nib.load(run / f"results/converted/{patient}/0/CT_mask.nii.gz").dataobj)
        sample = nib.load(run / f"results/lung_synthesis/ddpm/samples/{patient}.nii.gz")
        assert sample.shape == real.shape
        np.testing.assert_allclose(sample.affine, real.affine, atol=1e-5)
        synthetic, hu = np.asarray(sample.dataobj), np.asarray(real.dataobj, dtype=np.float32)
        outside = labels == 0
        np.testing.assert_array_equal(synthetic[outside], hu[outside])
        assert np.abs(synthetic[~outside] - hu[~outside]).mean() > 1.0


def test_fidelity_metrics_on_held_out_patients_and_report(run):
    metrics = json.loads((run / "results/lung_synthesis/ddpm/metrics.json").read_text())
    splits = pd.read_csv(run / "results/lung_synthesis/splits.csv")
    test = set(splits.loc[splits["split"] != "train", "patient_id"])
    assert {row["patient_id"] for row in metrics["per_patient"]} == test
    assert metrics["n_samples_not_scored"] == PATIENTS - len(test)
    for name in ("mae_hu", "psnr_db", "ssim", "hu_wasserstein"):
        assert np.isfinite(metrics["metrics"][name]["mean"]), name
    page = (run / "results/report/index.html").read_text()
    section = page[page.index('<section id="lung_synthesis">') :]
    assert "Mask-conditioned 3D diffusion model trained for 40 steps" in section
    assert section.count("<img ") == section.count("<figcaption>") >= 3


def test_apply_samples_a_new_cohort_with_the_frozen_model(run, tmp_path):
    """A second demo cohort: a synthetic CT of each new patient's masks, the model unchanged."""
    from oncoflow.artefacts import sha256

    subprocess.run(
        [sys.executable, str(REPO / "scripts/make_demo_cohort.py"), "--out", str(tmp_path),
         "--seed", "9", "--patients", "6", "--study", "lung_synthesis"],
        check=True, capture_output=True, env=snakemake_env(),
    )  # fmt: skip
    model = run / "results/lung_synthesis/ddpm/model.pt"
    before = (sha256(model), model.stat().st_mtime_ns)
    proc = snakemake(run, "apply", "--config", f"apply_cohort={tmp_path}", "apply_name=second")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    assert (sha256(model), model.stat().st_mtime_ns) == before
    ran = set(re.findall(r"\(Rule: (\w+)\)", proc.stdout + proc.stderr))
    assert "apply_ddpm" in ran
    assert all(rule == "apply" or rule.startswith("apply_") for rule in ran), ran
    out = run / "results/apply/second"
    for patient in pd.read_csv(tmp_path / "lung_synthesis/images.csv")["patient_id"].unique():
        real = nib.load(out / f"converted/{patient}/0/CT.nii.gz")
        sample = nib.load(out / f"lung_synthesis/ddpm/samples/{patient}.nii.gz")
        assert sample.shape == real.shape
        np.testing.assert_allclose(sample.affine, real.affine, atol=1e-5)
    metrics = json.loads((out / "lung_synthesis/ddpm/metrics.json").read_text())
    assert {row["patient_id"] for row in metrics["per_patient"]} == set(
        pd.read_csv(tmp_path / "lung_synthesis/images.csv")["patient_id"]
    )  # every new patient is held out
    page = (out / "report/index.html").read_text()
    section = page[page.index('<section id="lung_synthesis">') :]
    assert "Mask-conditioned 3D diffusion model trained for 40 steps" in section
