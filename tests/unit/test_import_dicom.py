"""scripts/import_dicom.py on a messy DICOM tree: slots, skips, masks, pseudonyms, conversion."""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk

from oncoflow.cohort import read_table
from oncoflow.convert import convert_patient
from oncoflow.demo.dicomtree import write_dicom_tree
from oncoflow.features.radiomics import run_extraction
from oncoflow.importer import index_tree, pseudonym
from oncoflow.validate import validate_cohort

REPO = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("import_dicom", REPO / "scripts/import_dicom.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The tree, its manifest, and the cohort the script made of it (with a clinical table)."""
    root = tmp_path_factory.mktemp("import")
    manifest = write_dicom_tree(root / "tree", seed=3)
    patients = sorted(manifest["patients"])
    clinical = pd.DataFrame(
        {"mrn": [*patients, "MRN_NOT_IN_TREE"], "age": range(len(patients) + 1)}
    )
    clinical.to_csv(root / "clinical.csv", index=False)
    args = ["--dicom", str(root / "tree"), "--out", str(root / "cohort"), "--workers", "2"]
    args += ["--key-file", str(root / "keys" / "key.txt"), "--clinical", str(root / "clinical.csv")]
    assert _script().main([*args, "--id-column", "mrn"]) == 0
    return root, manifest


def _slots(manifest: dict) -> set[tuple[str, int, str, str]]:
    """(original id, time point, modality, series) of every series the manifest says to take."""
    out = set()
    for patient, info in manifest["patients"].items():
        dates = sorted({study["study_date"] for study in info["studies"]})
        for study in info["studies"]:
            for series in study["series"]:
                tp = dates.index(study["study_date"])
                out.add((patient, tp, series["modality"], series["series"]))
    return out


def test_every_series_takes_its_slot_and_every_skip_is_listed(imported):
    root, manifest = imported
    key = (root / "keys" / "key.txt").read_text().strip()
    ids = {pseudonym(bytes.fromhex(key), p): p for p in manifest["patients"]}
    images = read_table(root / "cohort", "images")
    got = {(ids[r.patient_id], r.timepoint, r.modality, r.series) for r in images.itertuples()}
    assert got == _slots(manifest)
    report = json.loads((root / "cohort" / "import_report.json").read_text())
    reported = {(e["reason"], e["path"]) for e in report["skipped"]}
    copies = {e.get("series_uid") for e in report["skipped"] if e["reason"] == "duplicate"}
    for entry in manifest["skipped"]:
        if entry["what"] == "duplicate":  # either copy may be the one kept
            assert entry["series_uid"] in copies
        else:
            assert (entry["what"], entry["path"]) in reported, entry
    assert set(report["skipped_by_reason"]) <= {
        "not_dicom", "duplicate", "localizer", "dose_report", "secondary_capture",
        "too_few_slices", "ambiguous",
    }  # fmt: skip


def test_masks_are_linked_with_their_lesion_name(imported):
    root, manifest = imported
    images = read_table(root / "cohort", "images")
    expected = sorted(
        s["mask"]["names"][0]
        for info in manifest["patients"].values()
        for study in info["studies"]
        for s in study["series"]
        if s["mask"]
    )
    assert sorted(images["mask_roi"].dropna()) == expected
    report = json.loads((root / "cohort" / "import_report.json").read_text())
    missing = sum(
        s["mask"]["references_missing_series"]
        for info in manifest["patients"].values()
        for study in info["studies"]
        for s in study["series"]
        if s["mask"]
    )
    assert report["linked_by"]["frame_of_reference"] == missing >= 1
    masks = images["mask_path"].dropna()
    formats = {
        pydicom.dcmread(root / "cohort" / m, stop_before_pixels=True).Modality for m in masks
    }
    assert formats == {"RTSTRUCT", "SEG"}


def test_the_cohort_validates_and_converts_as_a_hand_written_one(imported, tmp_path):
    """Every imported row converts to the same image and mask as a hand-written images.csv row
    pointing at the same files (copied out of the tree's mixed folders as a person would)."""
    root, manifest = imported
    cohort = root / "cohort"
    report = validate_cohort(cohort, outcomes_required=False)
    assert report.ok, [p.message for p in report.errors]
    ids = {
        pseudonym(bytes.fromhex((root / "keys/key.txt").read_text()), p): p
        for p in manifest["patients"]
    }
    images = read_table(cohort, "images")
    by_uid = {}
    for info in manifest["patients"].values():
        for study in info["studies"]:
            for s in study["series"]:
                by_uid[s["series_uid"]] = s
    hand = []
    for row in images.itertuples():
        uid = pydicom.dcmread(next((cohort / row.path).iterdir()), stop_before_pixels=True)
        series = by_uid[str(uid.SeriesInstanceUID)]
        folder = tmp_path / "hand" / row.patient_id / f"{row.timepoint}_{row.modality}_{row.series}"
        folder.mkdir(parents=True)
        for f in (root / "tree" / series["folder"]).iterdir():
            header = pydicom.dcmread(f, stop_before_pixels=True, force=True)
            if str(header.get("SeriesInstanceUID", "")) == series["series_uid"]:
                shutil.copy(f, folder / f.name)
        mask = series["mask"]
        hand.append(
            [row.patient_id, row.timepoint, row.modality, row.series, str(folder),
             str(root / "tree" / mask["file"]) if mask else "", mask["names"][0] if mask else "",
             row.site]
        )  # fmt: skip
    pd.DataFrame(hand, columns=list(images.columns)).to_csv(tmp_path / "images.csv", index=False)
    hand_rows = read_table(tmp_path, "images")
    for patient in sorted(set(images["patient_id"])):
        convert_patient(cohort, images, tmp_path / "a" / patient, patient_id=patient)
        convert_patient(tmp_path, hand_rows, tmp_path / "b" / patient, patient_id=patient)
    a_files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.nii.gz"))
    b_files = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.nii.gz"))
    assert a_files == b_files
    assert sum("_mask" in p.name for p in a_files) == len(images["mask_path"].dropna())
    for rel in a_files:
        a, b = sitk.ReadImage(tmp_path / "a" / rel), sitk.ReadImage(tmp_path / "b" / rel)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
        assert a.GetOrigin() == b.GetOrigin()
    # and the features: real pyradiomics on every masked CT of both conversions
    params = REPO / "params" / "radiomics" / "ct_default_v1.yaml"
    masked_ct = [m for m in a_files if m.name.startswith("CT") and m.name.endswith("_mask.nii.gz")]
    assert masked_ct
    for mask in masked_ct:
        image = mask.with_name(mask.name.replace("_mask", ""))
        a, b = (
            run_extraction(root / image, root / mask, params=params).features
            for root in (tmp_path / "a", tmp_path / "b")
        )
        assert len(a) > 100
        pd.testing.assert_frame_equal(a, b)
    assert set(ids) == set(images["patient_id"])


def test_no_identifying_value_leaves_the_dicom_files(imported, tmp_path, caplog):
    """Tables, report, converted outputs and log lines hold no name, ID, date of birth,
    accession number or institution of the headers (the linked DICOM files still do)."""
    root, manifest = imported
    phi = {v for info in manifest["patients"].values() for v in info["phi"]}
    cohort = root / "cohort"
    images = read_table(cohort, "images")
    with caplog.at_level(logging.DEBUG):
        for patient in sorted(set(images["patient_id"])):
            convert_patient(cohort, images, tmp_path / patient, patient_id=patient)
        index_tree(root / "tree", workers=1)
    texts = [
        (cohort / name).read_bytes()
        for name in ("images.csv", "clinical.csv", "import_report.json")
    ]
    texts += [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    texts.append(caplog.text.encode())
    texts += [str(p.relative_to(cohort)).encode() for p in cohort.rglob("*")]
    for value in phi:
        for text in texts:
            assert value.encode() not in text, value


def test_tables_are_rekeyed_and_the_mapping_stays_with_the_key(imported):
    root, manifest = imported
    clinical = pd.read_csv(root / "cohort" / "clinical.csv")
    assert list(clinical.columns) == ["patient_id", "age"]
    assert len(clinical) == len(manifest["patients"])
    mapping = pd.read_csv(root / "keys" / "key_mapping.csv")
    assert set(mapping["original_id"]) == set(manifest["patients"])
    assert set(mapping["patient_id"]) == set(clinical["patient_id"])
    report = json.loads((root / "cohort" / "import_report.json").read_text())
    assert len(report["clinical"]["without_images"]) == 1  # MRN_NOT_IN_TREE, by pseudonym
    assert report["clinical"]["without_row"] == []


def test_a_second_run_reads_the_index_cache(imported, caplog):
    root, _ = imported
    cache = root / "cohort" / ".dicom_index.json"
    assert cache.is_file()
    with caplog.at_level(logging.INFO, logger="oncoflow.importer.index"):
        records = index_tree(root / "tree", cache=cache)
    n = len(records)
    assert f"indexed {n} files ({n} from the cache)" in caplog.text
