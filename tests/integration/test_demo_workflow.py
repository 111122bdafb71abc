"""The foundation part of the DAG for real: demo -> validate -> convert on 2 cores, no-op rerun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import SimpleITK as sitk
import yaml
from conftest import run_snakemake as snakemake

REPO = Path(__file__).resolve().parents[2]
PATIENTS = 8

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("demo_run")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["demo"]["patients"] = PATIENTS
    config["demo"]["study_patients"] = {}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    proc = snakemake(workdir, "--show-failed-logs", "qc", "convert")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return workdir


def test_cohort_report_ok(demo_run):
    report = json.loads((demo_run / "results/qc/cohort_report.json").read_text())
    assert report["ok"] is True
    assert report["problems"] == []
    assert set(report["studies"]) == {
        "pancreas_progression",
        "pancreas_multitask",
        "net_survival",
        "lung_synthesis",
        "liver_response",
        "nsclc_mmdls",
    }
    assert report["n_patients"] == 6 * PATIENTS


def test_every_image_converted_with_sidecar(demo_run):
    import pandas as pd

    n_images = 0
    for study_dir in sorted((demo_run / "resources/demo").iterdir()):
        images = pd.read_csv(study_dir / "images.csv", dtype={"patient_id": str})
        for row in images.itertuples():
            if row.modality == "WSI":
                continue
            stem = row.modality if row.series == "-" else f"{row.modality}_{row.series}"
            out = demo_run / "results/converted" / row.patient_id / str(row.timepoint)
            image = sitk.ReadImage(str(out / f"{stem}.nii.gz"))
            sidecar = json.loads((out / f"{stem}.json").read_text())
            assert image.GetDimension() == 3
            assert sidecar
            if isinstance(row.mask_path, str) and row.mask_path:
                mask = sitk.ReadImage(str(out / f"{stem}_mask.nii.gz"))
                assert mask.GetSize() == image.GetSize()
                assert sitk.GetArrayViewFromImage(mask).max() >= 1
            n_images += 1
    assert n_images > 6 * PATIENTS


def test_dicom_pet_became_suv(demo_run):
    """DICOM PET is converted to SUVbw: background ~1-2, lesions several times higher."""
    checked = 0
    for sidecar_path in sorted((demo_run / "results/converted").glob("NS*/0/PET.json")):
        sidecar = json.loads(sidecar_path.read_text())
        if "dicom" not in json.dumps(sidecar).lower():
            continue
        suv = sitk.GetArrayFromImage(sitk.ReadImage(str(sidecar_path.with_suffix(".nii.gz"))))
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(sidecar_path.parent / "PET_mask.nii.gz")))
        lung = float(suv[mask == 1].mean())
        lesion = float(suv[mask == 2].max())
        assert 0.1 < lung < 3.0
        assert lesion > 2 * lung
        checked += 1
    assert checked >= 1


def test_no_phi_in_any_output(demo_run):
    from oncoflow.demo.dicomwrite import FakePHI

    phi_values = [v for v in vars(FakePHI()).values() if isinstance(v, str) and len(v) >= 6]
    # the demo gives each DICOM patient its own fake PHI: collect them from the DICOM headers
    import pydicom

    for dcm in (demo_run / "resources/demo").rglob("*.dcm"):
        ds = pydicom.dcmread(dcm, stop_before_pixels=True)
        phi_values += [str(ds.PatientName), str(ds.PatientBirthDate), str(ds.PatientID)]
        phi_values += [str(ds.get("AccessionNumber", "")), str(ds.get("InstitutionName", ""))]
    phi_values = sorted({v for v in phi_values if len(v) >= 6})
    assert phi_values
    for root in ("results", "logs"):  # logs/ holds the per-job benchmark files too
        for path in (demo_run / root).rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                if path.suffix == ".gz":
                    import gzip

                    data = gzip.decompress(data)
                for value in phi_values:
                    assert value.encode() not in data, f"{value!r} found in {path}"


def test_rerun_has_nothing_to_do(demo_run):
    proc = snakemake(demo_run, "-n", "qc", "convert")
    assert proc.returncode == 0, proc.stderr
    assert "Nothing to be done" in proc.stdout + proc.stderr
