"""oncoflow.workflow: what the rules ask of the config and of images.csv, without Snakemake."""

from __future__ import annotations

import doctest
import json
import shlex
from pathlib import Path

import pandas as pd
import pytest

from oncoflow.errors import CohortError, ConfigError
from oncoflow.workflow import options, tables


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": ["P2", "P1", "P1", "P1", "P3"],
            "timepoint": [0, 0, 1, 0, 0],
            "modality": ["CT", "CT", "CT", "WSI", "MR"],
            "series": ["-", "-", "-", "HE", "T2"],
            "path": ["a.nii.gz", "b.nii.gz", "c.nii.gz", "p1.svs", "d.nii.gz"],
            "mask_path": ["am.nii.gz", "bm.nii.gz", "", "", "dm.nii.gz"],
        }
    )


def test_the_modules_examples_hold():
    for module in (options, tables):
        assert doctest.testmod(module).failed == 0


def test_rois_slides_stems_and_patients_of_a_table():
    rows = _rows()
    # one job per masked image of the stems, per label, sorted; P1's unmasked tp1 is not one
    assert tables.roi_jobs(rows, ["CT"], [1, 2]) == [
        ("P1", 0, "CT", 1),
        ("P1", 0, "CT", 2),
        ("P2", 0, "CT", 1),
        ("P2", 0, "CT", 2),
    ]
    assert tables.roi_jobs(rows, ["MR_T2"], [1]) == [("P3", 0, "MR_T2", 1)]
    assert tables.slides(rows) == {"P1": "p1.svs"}
    assert tables.stems(rows) == ["CT", "MR_T2", "WSI_HE"]
    assert tables.convertible(rows) == ["P1", "P2", "P3"]
    assert tables.patients_with(rows, ["MR_T2", "WSI_HE"]) == ["P1", "P3"]
    root = Path("/c")
    assert tables.files_of(root, rows[rows["patient_id"] == "P1"]) == [
        root / "b.nii.gz",
        root / "bm.nii.gz",
        root / "c.nii.gz",
        root / "p1.svs",
    ]


def test_a_feature_source_without_its_images_is_refused_with_the_stems_there_are():
    rows = _rows()
    settings = {"radiomics": {"images": ["CT"], "labels": [1]}, "pathomics": {"tile_um": 256}}
    assert tables.feature_sources("s", settings, rows, Path("c/images.csv")) == [
        "radiomics",
        "pathomics",
    ]
    with pytest.raises(ConfigError, match=r"pet.images \['PT'\] matches no image with a mask"):
        tables.feature_sources("s", {"pet": {"images": ["PT"], "labels": [1]}}, rows, Path("t"))
    with pytest.raises(ConfigError, match="stems there: CT, MR_T2, WSI_HE"):
        tables.feature_sources("s", {"pet": {"images": ["PT"], "labels": [1]}}, rows, Path("t"))
    no_wsi = rows[rows["modality"] != "WSI"]
    with pytest.raises(ConfigError, match=r"pathomics is on but images\.csv has no WSI row"):
        tables.feature_sources("s", {"pathomics": {"tile_um": 256}}, no_wsi, Path("t"))


def test_images_csv_is_read_and_checked(tmp_path):
    with pytest.raises(CohortError, match=r"study s: .*images.csv not found \(k in the config\)"):
        tables.read_images(tmp_path, "study s", "k")
    _rows().drop(columns="path").to_csv(tmp_path / "images.csv", index=False)
    with pytest.raises(CohortError, match=r"missing column\(s\) path"):
        tables.read_images(tmp_path, "study s", "k")
    _rows().to_csv(tmp_path / "images.csv", index=False)
    table = tables.read_images(tmp_path, "study s", "k")
    assert table["mask_path"].tolist()[2] == ""  # empty cells stay empty strings


def test_patients_belong_to_one_cohort_folder():
    a = pd.DataFrame({"patient_id": ["P1", "P2"]})
    b = pd.DataFrame({"patient_id": ["P2", "P3"]})
    owners = tables.patient_owners({"s1": (Path("c1"), a), "s2": (Path("c1"), b)})
    assert owners == {"P1": "s1", "P2": "s1", "P3": "s2"}
    with pytest.raises(CohortError, match="patient P2 appears in two cohorts"):
        tables.patient_owners({"s1": (Path("c1"), a), "s2": (Path("c2"), b)})


def test_options_of_the_scripts():
    settings = {
        "clinical": ["age", "sex"],
        "targets": ["os_time", "os_event", "pfs_time", "pfs_event"],
        "mask_labels": [1, 2],
        "folds": {"k": 3, "holdout": 0.25},
        "stratify": "os_event",
        "harmonize": True,
        "negative_control": True,
        "permutations": 4,
        "model": "net_survival",
        "modalities": ["CT"],
    }
    convert = {"tilt": "resample", "uneven_spacing": "error"}
    assert options.quoted_options(options.validate_options(settings, convert)) == (
        "--clinical 'age,sex' --targets 'os_time,os_event,pfs_time,pfs_event' "
        "--mask-labels '1,2' --tilt 'resample' --uneven-spacing 'error'"
    )
    assert options.folds_options(settings, 7) == (
        "--seed 7 --repeats 5 --holdout 0.25 --k 3 --stratify os_event"
    )
    assert options.fold_names(settings) == ["0", "1", "2", "final"]
    by_site = {"folds": {"by": "site", "k": 2}}
    assert options.folds_options(by_site, 7).endswith("--k 2 --by-site")
    assert options.fold_names(by_site) == ["0", "1", "final"]
    with pytest.raises(ValueError, match="by: site} needs k"):
        options.fold_names({"folds": {"by": "site"}})
    assert options.fold_names({}) == ["0", "1", "2", "3", "4", "final"]
    assert options.survival_variants(settings) == ["raw", "combat", "permuted"]
    assert options.survival_variants({}) == ["raw"]
    assert options.survival_options(settings, "permuted", 7, "365,730", "h") == (
        "--targets os,pfs --seed 7 --horizons 365,730 --permute --permutations 4"
    )
    assert options.survival_options(settings, "combat", 7, "365", "h").endswith("--harmonized h")
    assert options.horizons_option([365, 730.0, 1095.5]) == "365,730,1095.5"
    assert options.pet_options({"threshold_rel": 0.41, "threshold": 2.5}) == "--threshold-rel 0.41"
    assert options.pet_options({"threshold": 2.5}) == "--threshold 2.5"
    assert options.pet_options({}) == ""
    foci = {"threshold": 2.5, "foci": {"labels": [1, 3], "threshold": 3.0}}
    assert options.pet_options(foci) == "--threshold 2.5 --foci-labels 1 3 --foci-threshold 3.0"
    sampling = {"ddpm": {"sampling": {"anatomy_preserving": False, "ddim_steps": 20}}}
    assert options.ddpm_sampling_options(sampling) == "--no-anatomy-preserving --ddim-steps 20"
    card = options.model_card_options("s", "raw", settings, ["radiomics"], Path("c d"))
    assert card == (
        "--study s --variant raw --model net_survival --cohort 'c d' "
        "--inputs CT,radiomics,clinical --targets os_time,os_event,pfs_time,pfs_event"
    )


def test_nnunet_settings_names_and_report_options():
    block = {"nnunet": {"dataset_id": 7, "dataset_name": "Pancreas", "configuration": "2d"}}
    nnunet = options.nnunet_settings("p", block)
    assert nnunet["planner"] == "nnUNetPlannerResEncM"  # a default
    assert options.nnunet_dataset(nnunet) == "Dataset007_Pancreas"
    assert options.nnunet_model(nnunet) == "oncoflowMultitaskTrainer__oncoflowResEncMPlans__2d"
    with pytest.raises(ConfigError, match=r"needs a studies\.p\.nnunet block"):
        options.nnunet_settings("p", {})
    parts = {"metrics": {"raw": "m.json"}, "comparisons": None, "harmonize": {}, "ddpm": []}
    assert options.report_options('{"a": 1}', parts, 24, "s applied to b") == (
        """--settings '{"a": 1}' --qc-patients 24 --metrics raw=m.json --title 's applied to b'"""
    )


def test_jobs_before_prediction_do_not_see_the_calibrations_starting_offsets():
    calibrate = {"label": 1, "reference_hu": 100, "passes": 2, "starts": [-40, 0, 40]}
    settings = {"dataset_id": 7, "calibrate": calibrate, "refit_head": True}
    train = options.before_prediction(settings, ["dataset_id", "calibrate"])
    # a new starting offset re-predicts; export, planning and training keep their params
    assert train == {"dataset_id": 7, "calibrate": {"label": 1, "reference_hu": 100, "passes": 2}}
    assert settings["calibrate"]["starts"] == [-40, 0, 40]  # the settings are not changed
    assert options.before_prediction({"dataset_id": 7}, ["dataset_id", "calibrate"]) == {
        "dataset_id": 7
    }


def test_the_missing_input_decision_reaches_validation_and_the_model_card_as_one_argument():
    decision = {
        "policy": {"modalities": "drop_patient", "timepoints": "refuse", "clinical": "impute"},
        "dropped": {"O'Neil": ["MR_T2 at time point 1"]},
        "imputed": {"age": ["P2"]},
        "partial": {},
    }
    settings = {"clinical": ["age"], "model": "cox", "targets": ["os_time", "os_event"]}
    convert = {"tilt": "resample", "uneven_spacing": "resample"}
    validate = options.quoted_options(options.validate_options(settings, convert, decision))
    argv = shlex.split(validate)
    assert argv[-2] == "--missing"
    assert json.loads(argv[-1]) == decision
    assert "--missing" not in options.quoted_options(options.validate_options(settings, convert))
    card = options.model_card_options("s", "raw", settings, [], Path("c"), missing=decision)
    argv = shlex.split(card)
    assert argv[-2] == "--card-missing"
    assert json.loads(argv[-1]) == decision
    assert "--card-missing" not in options.model_card_options("s", "raw", settings, [], Path("c"))
