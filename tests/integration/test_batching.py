"""Batched per-patient stages change no output, and a broken patient costs only itself.

Two real runs of the nsclc_mmdls demo (conversion, lesion crops, radiomics, PET metrics): one
patient per batch (the unbatched behaviour) and four per batch. In the batched run one patient's
CT is corrupted after validation: with ``--keep-going`` that patient's jobs fail with a message
naming the patient and the file, and every other patient's per-patient files are produced and
equal, byte for byte, to those of the one-patient-per-job run.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import run_snakemake

REPO = Path(__file__).resolve().parents[2]
PATIENTS = 8
TARGETS = ("convert", "lesions", "features")

pytestmark = pytest.mark.slow


def _workdir(root: Path, batch: int) -> Path:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for name, study in config["studies"].items():
        study["enabled"] = name == "nsclc_mmdls"
    config["demo"]["patients"] = PATIENTS
    config["demo"]["study_patients"] = {}
    config["batch"] = {"patients": batch}
    root.mkdir()
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def _per_patient_files(run: Path) -> dict[str, bytes]:
    roots = ["results/converted", "results/nsclc_mmdls/lesions"]
    roots += [f"results/nsclc_mmdls/features/{s}" for s in ("radiomics", "pet")]
    files = {}
    for root in roots:
        for path in sorted((run / root).rglob("*")):
            if path.is_file() and path.name != ".snakemake_timestamp":
                files[str(path.relative_to(run))] = path.read_bytes()
    return files


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path, str, str]:
    root = tmp_path_factory.mktemp("batching")
    single = _workdir(root / "single", 1)
    proc = run_snakemake(single, *TARGETS)
    assert proc.returncode == 0, proc.stderr[-4000:]

    batched = _workdir(root / "batched", 4)
    proc = run_snakemake(batched, "results/qc/nsclc_mmdls/cohort_report.json")
    assert proc.returncode == 0, proc.stderr[-4000:]
    cohort = batched / "resources/demo/nsclc_mmdls"
    images = pd.read_csv(cohort / "images.csv", dtype={"patient_id": str})
    nifti = images[(images["modality"] == "CT") & images["path"].str.endswith(".nii.gz")]
    broken, path = nifti.iloc[0][["patient_id", "path"]]
    (cohort / path).write_bytes(b"not a nifti file")
    proc = run_snakemake(batched, "--keep-going", *TARGETS)
    assert proc.returncode != 0
    return single, batched, proc.stdout + proc.stderr, broken


def test_the_broken_patient_fails_naming_patient_and_file(runs):
    _, batched, output, broken = runs
    assert "Error in rule convert_patient" in output
    log = (batched / "logs/convert" / f"{broken}.log").read_text()
    problem = [line for line in log.splitlines() if line.startswith("error:")]
    assert len(problem) == 1, log  # once: publish.sh does not repeat the item log's line
    assert broken in problem[0]
    assert "CT.nii.gz" in problem[0]
    assert not (batched / "results/converted" / broken).exists()


def test_every_other_patient_is_produced_and_unchanged_by_batching(runs):
    single, batched, _, broken = runs
    expected = {
        path: data for path, data in _per_patient_files(single).items() if f"/{broken}" not in path
    }
    produced = _per_patient_files(batched)
    assert not [path for path in produced if f"/{broken}" in path]
    patients = {path.split("/")[2] for path in expected if path.startswith("results/converted/")}
    assert len(patients) == PATIENTS - 1
    assert sorted(produced) == sorted(expected)
    differing = [path for path in expected if produced[path] != expected[path]]
    assert differing == []
    # the broken patient shared its batch with others: batch 0 holds NS001-NS004
    assert (batched / "results/.batches/convert/nsclc_mmdls/0" / f"{broken}.error").exists()
    assert sum((batched / "results/converted" / f"NS00{i}").is_dir() for i in range(1, 5)) == 3
