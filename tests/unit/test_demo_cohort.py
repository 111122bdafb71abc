"""write_demo on a tiny cohort: files, schemas, splits, masks, slides, DICOM, oracle."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest

from oncoflow import STUDIES
from oncoflow.cohort import read_table, row_to_record
from oncoflow.demo import DemoPlan, plan_cohort, write_demo
from oncoflow.schemas import load_schema

PATIENTS = 8
SEED = 11

MASK_LABELS = {
    "pancreas_progression": {1, 2},
    "pancreas_multitask": {1, 2},
    "net_survival": {1},
    "lung_synthesis": {1, 2},
    "liver_response": {1},
    "nsclc_mmdls": {1, 2},
}
PRIMARY_TARGET = {
    "pancreas_progression": "progression_next",
    "pancreas_multitask": "subtype",
    "net_survival": "os_event",
    "liver_response": "response",
    "nsclc_mmdls": "histology",
}
ORACLE_KEYS = {
    "pancreas_progression": {"progression_next": "auc"},
    "pancreas_multitask": {"subtype": "macro_auc"},
    "net_survival": {"os": "c_index", "pfs": "c_index"},
    "lung_synthesis": {},
    "liver_response": {"response": "auc"},
    "nsclc_mmdls": {"histology": "auc", "stage": "macro_auc", "dfs": "c_index", "os": "c_index"},
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, DemoPlan]]:
    out = tmp_path_factory.mktemp("demo")
    plans = write_demo(out, seed=SEED, patients=PATIENTS)
    return out, {p.study: p for p in plans}


@pytest.mark.parametrize("study", STUDIES)
def test_written_files_match_the_plan(demo: tuple[Path, dict[str, DemoPlan]], study: str) -> None:
    out, plans = demo
    plan = plans[study]
    planned = plan_cohort(study, seed=SEED, patients=PATIENTS)
    assert plan.images.equals(planned.images)
    assert plan.files == planned.files
    root = out / study
    images = pd.read_csv(root / "images.csv", dtype=str, keep_default_na=False)
    expected = plan.images.astype(object).where(plan.images.notna(), "").astype(str)
    pd.testing.assert_frame_equal(images, expected, check_dtype=False)
    for rel in plan.files:
        assert (root / rel).exists(), rel
    folders = {rel for rel in plan.files if (root / rel).is_dir()}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            assert rel in plan.files or any(rel.startswith(f + "/") for f in folders), rel


@pytest.mark.parametrize("study", STUDIES)
def test_tables_validate_against_the_schemas(
    demo: tuple[Path, dict[str, DemoPlan]], study: str
) -> None:
    out, _ = demo
    for table in ("images", "clinical", "outcomes", "splits"):
        schema = load_schema(table)
        validator = jsonschema.Draft202012Validator(schema)
        frame = read_table(out / study, table)
        assert set(frame.columns) <= set(schema["properties"])
        for _, row in frame.iterrows():
            validator.validate(row_to_record(row, schema))
    clinical = read_table(out / study, "clinical")
    assert clinical["patient_id"].is_unique
    assert len(clinical) == PATIENTS
    assert not clinical.isna().any().any()


@pytest.mark.parametrize("study", STUDIES)
def test_every_split_has_patients_and_train_has_every_class(
    demo: tuple[Path, dict[str, DemoPlan]], study: str
) -> None:
    out, _ = demo
    splits = read_table(out / study, "splits")
    images = read_table(out / study, "images")
    assert splits["patient_id"].is_unique
    assert set(splits["patient_id"]) == set(images["patient_id"])
    assert set(splits["split"]) == {"train", "internal_test", "external_test"}
    site = images.drop_duplicates("patient_id").set_index("patient_id")["site"]
    external = set(splits.loc[splits["split"] == "external_test", "patient_id"])
    assert external == set(site[site == "site_c"].index)
    target = PRIMARY_TARGET.get(study)
    if target is None:
        return
    outcomes = read_table(out / study, "outcomes").merge(splits, on="patient_id")
    train = outcomes[outcomes["split"] == "train"][target].dropna()
    assert train.nunique() >= 2, f"{study}: train has only {set(train)}"
    tests = outcomes[outcomes["split"] != "train"][target].dropna()
    assert tests.nunique() >= 2


@pytest.mark.parametrize("study", STUDIES)
def test_masks_are_non_empty_label_maps_on_the_image_grid(
    demo: tuple[Path, dict[str, DemoPlan]], study: str
) -> None:
    out, _ = demo
    images = read_table(out / study, "images")
    for _, row in images[images["mask_path"].notna()].iterrows():
        if row["mask_roi"] is not None:
            continue  # RTSTRUCT, see test_dicom_patients
        img = nib.load(out / study / row["path"])
        mask = nib.load(out / study / row["mask_path"])
        assert img.shape == mask.shape
        np.testing.assert_allclose(img.affine, mask.affine, atol=1e-4)
        labels = np.asarray(mask.dataobj)
        assert labels.dtype == np.uint8
        assert set(np.unique(labels)) == {0} | MASK_LABELS[study], row["mask_path"]
        assert np.prod(img.shape) <= 64**3  # CPU-sized (pancreas_multitask: 88 x 48 x 32)


def test_geometry_is_realistic(demo: tuple[Path, dict[str, DemoPlan]]) -> None:
    out, _ = demo
    img = nib.load(out / "pancreas_progression" / "images/PP001/tp0/CT_arterial.nii.gz")
    zooms = img.header.get_zooms()
    assert zooms[2] > zooms[0]  # thick slices
    assert np.abs(img.affine[:3, 3]).min() > 10  # non-zero origin
    assert np.sign(img.affine[0, 0]) == -1  # LPS stored as RAS
    hu = np.asarray(img.dataobj)
    assert hu.min() == -1024
    assert 250 < hu.max() < 1500


def test_slides_open_with_openslide(demo: tuple[Path, dict[str, DemoPlan]]) -> None:
    openslide = pytest.importorskip("openslide")
    out, _ = demo
    images = read_table(out / "net_survival", "images")
    slides = images[images["modality"] == "WSI"]
    assert len(slides) == PATIENTS
    vendors = set()
    for path in slides["path"]:
        slide = openslide.OpenSlide(out / "net_survival" / path)
        assert slide.level_count >= 3
        assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(0.5)
        assert float(slide.properties["openslide.mpp-y"]) == pytest.approx(0.5)
        assert slide.dimensions[0] >= 4000
        vendors.add(slide.properties["openslide.vendor"])
        region = np.asarray(slide.read_region((1800, 1100), 0, (64, 64)))[..., :3]
        assert region.mean() < 235  # tissue, not background
        slide.close()
    assert vendors == {"generic-tiff", "aperio"}


@pytest.mark.parametrize(
    ("study", "rois"),
    [("pancreas_multitask", ["Pancreas", "Lesion"]), ("nsclc_mmdls", ["Lung", "GTV"])],
)
def test_dicom_patients(
    demo: tuple[Path, dict[str, DemoPlan]], study: str, rois: list[str]
) -> None:
    out, _ = demo
    images = read_table(out / study, "images")
    dicom = images[images["mask_roi"].notna()]
    assert dicom["patient_id"].nunique() == 2
    names = set()
    tables = "".join(
        (out / study / f"{t}.csv").read_text() for t in ("images", "clinical", "outcomes")
    )
    for _, row in dicom.iterrows():
        series = sorted((out / study / row["path"]).iterdir())
        assert len(series) >= 24
        first = pydicom.dcmread(series[0])
        names.add(str(first.PatientName))
        assert str(first.PatientName) not in tables
        assert str(first.PatientID) not in tables
        if row["modality"] == "PET":
            assert first.Units == "BQML"
            assert float(first.PatientWeight) > 0
            assert "RadionuclideTotalDose" in first.RadiopharmaceuticalInformationSequence[0]
        rt = pydicom.dcmread(out / study / row["mask_path"])
        assert [r.ROIName for r in rt.StructureSetROISequence] == rois
        assert all(len(c.ContourSequence) > 0 for c in rt.ROIContourSequence)
        assert row["mask_roi"] == "+".join(rois)
    assert len(names) == 2  # distinct fake PHI per patient


@pytest.mark.parametrize("study", STUDIES)
def test_oracle(demo: tuple[Path, dict[str, DemoPlan]], study: str) -> None:
    out, _ = demo
    oracle = json.loads((out / study / "oracle.json").read_text())
    assert {k: v["metric"] for k, v in oracle.items()} == ORACLE_KEYS[study]
    for entry in oracle.values():
        assert 0.0 <= entry["value"] <= 1.0
    if study == "nsclc_mmdls":  # histology: what the rendered CT shows, the latent AUC beside it
        assert 0.0 <= oracle["histology"]["value_latent"] <= 1.0
