"""plan_cohort: fast, deterministic, schema-conformant, and refuses bad arguments."""

from __future__ import annotations

import time

import jsonschema
import pytest

from oncoflow import STUDIES
from oncoflow.cohort import row_to_record
from oncoflow.demo import plan_cohort
from oncoflow.errors import OncoflowError
from oncoflow.schemas import load_schema


@pytest.mark.parametrize("study", STUDIES)
def test_plan_is_fast_and_deterministic(study: str) -> None:
    plan_cohort(study, seed=0, patients=40)  # warm imports
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        first = plan_cohort(study, seed=3, patients=40)
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.05, f"plan_cohort({study}) took {min(timings) * 1000:.1f} ms"
    again = plan_cohort(study, seed=3, patients=40)
    assert first.images.equals(again.images)
    assert first.files == again.files
    assert first.study == study


@pytest.mark.parametrize("study", STUDIES)
def test_plan_rows_follow_the_images_schema(study: str) -> None:
    plan = plan_cohort(study, seed=0, patients=8)
    schema = load_schema("images")
    validator = jsonschema.Draft202012Validator(schema)
    for _, row in plan.images.iterrows():
        validator.validate(row_to_record(row, schema))
    assert list(plan.images.columns) == list(schema["properties"])
    assert plan.images["patient_id"].nunique() == 8
    keys = plan.images[["patient_id", "timepoint", "modality", "series"]]
    assert not keys.duplicated().any()
    assert set(plan.images["site"]) == {"site_a", "site_b", "site_c"}
    for path in (*plan.images["path"], *plan.images["mask_path"].dropna()):
        assert path in plan.files


def test_patient_ids_never_collide_across_studies() -> None:
    ids = [set(plan_cohort(s, seed=0, patients=40).images["patient_id"]) for s in STUDIES]
    assert sum(len(i) for i in ids) == len(set().union(*ids)) == 6 * 40


def test_patients_are_a_prefix_of_a_larger_cohort() -> None:
    small = plan_cohort("pancreas_progression", seed=5, patients=8).images
    large = plan_cohort("pancreas_progression", seed=5, patients=20).images
    assert small.equals(large[large["patient_id"].isin(small["patient_id"])].reset_index(drop=True))


def test_seed_changes_the_plan() -> None:
    a = plan_cohort("pancreas_progression", seed=0, patients=40).images
    b = plan_cohort("pancreas_progression", seed=1, patients=40).images
    assert len(a) != len(b) or not a.equals(b)


def test_study_content() -> None:
    pp = plan_cohort("pancreas_progression", seed=0, patients=40).images
    per_patient = pp.groupby("patient_id")["timepoint"].nunique()
    assert set(per_patient) <= {3, 4}
    assert set(pp["series"]) == {"arterial", "venous", "delayed"}
    lr = plan_cohort("liver_response", seed=0, patients=8).images
    assert set(lr["timepoint"]) == {0, 1}
    assert set(lr["series"]) == {"T1", "T2", "T1V"}
    ns = plan_cohort("nsclc_mmdls", seed=0, patients=40).images
    dicom = ns[ns["mask_roi"].notna()]
    assert set(dicom["modality"]) == {"CT", "PET"}
    assert set(dicom["mask_roi"]) == {"Lung+GTV"}
    assert dicom["patient_id"].nunique() == 10
    pm = plan_cohort("pancreas_multitask", seed=0, patients=8).images
    assert set(pm.loc[pm["mask_roi"].notna(), "mask_roi"]) == {"Pancreas+Lesion"}
    assert pm["mask_roi"].notna().sum() == 2
    net = plan_cohort("net_survival", seed=0, patients=40).images
    slides = net[net["modality"] == "WSI"]
    assert len(slides) == 40
    assert set(slides["series"]) == {"HE"}
    assert slides["path"].str.endswith(".svs").sum() == 2


@pytest.mark.parametrize(
    ("study", "seed", "patients", "match"),
    [
        ("nope", 0, 8, "unknown study"),
        ("lung_synthesis", -1, 8, "seed"),
        ("lung_synthesis", 0, 3, "patients"),
    ],
)
def test_bad_arguments(study: str, seed: int, patients: int, match: str) -> None:
    with pytest.raises(OncoflowError, match=match):
        plan_cohort(study, seed=seed, patients=patients)
