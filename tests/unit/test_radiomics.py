"""Radiomics: our tidy table equals a direct pyradiomics call; geometry and label errors."""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from oncoflow.demo import write_cohort
from oncoflow.errors import FeatureError
from oncoflow.features.radiomics import (
    FEATURE_COLUMNS,
    RadiomicsResult,
    extract_radiomics,
    quiet_pyradiomics,
    run_extraction,
    settings_hash,
    write_features,
)

REPO = Path(__file__).resolve().parents[2]
CT_DEFAULT = REPO / "params" / "radiomics" / "ct_default_v1.yaml"
SEED002 = REPO / "params" / "radiomics" / "net_seed002_v1.yaml"


@pytest.fixture(scope="module")
def demo_lesion(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """CT + lesion mask of the first demo net_survival patient (4-5 mm voxels)."""
    root = tmp_path_factory.mktemp("demo")
    write_cohort(root, "net_survival", seed=0, patients=6)
    folder = root / "net_survival" / "images" / "NET001" / "tp0"
    return folder / "CT.nii.gz", folder / "mask.nii.gz"


@pytest.fixture(scope="module")
def extracted(demo_lesion) -> dict[Path, RadiomicsResult]:
    """Our extraction of the demo lesion with each versioned params file (computed once)."""
    quiet_pyradiomics()
    image, mask = demo_lesion
    return {p: run_extraction(image, mask, params=p, label=1) for p in (CT_DEFAULT, SEED002)}


def _direct(image: Path, mask: Path, params: Path, label: int = 1) -> dict[str, float]:
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    result = RadiomicsFeatureExtractor(str(params)).execute(str(image), str(mask), label=label)
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


@pytest.mark.parametrize("params", [CT_DEFAULT, SEED002], ids=["ct_default", "seed002"])
def test_equals_direct_pyradiomics_on_demo_lesion(demo_lesion, extracted, params, tmp_path):
    image, mask = demo_lesion
    table = extracted[params].features
    direct = _direct(image, mask, params)

    assert list(table.columns) == list(FEATURE_COLUMNS)
    assert list(table["feature"]) == list(direct)  # same features, same order
    for name, value in zip(table["feature"], table["value"], strict=True):
        assert value == direct[name] or (math.isnan(value) and math.isnan(direct[name])), name
    # and still bit-identical after the CSV round trip
    out = write_features(table, tmp_path / "f.csv", patient_id="NET001", timepoint=0)
    back = pd.read_csv(out, float_precision="round_trip")
    assert back["value"].to_numpy().tobytes() == table["value"].to_numpy().tobytes()


def test_every_image_type_produces_features_on_demo(extracted):
    table = extracted[SEED002].features
    types = set(table["image_type"])
    assert {"original", "square", "squareroot", "logarithm", "exponential", "gradient"} <= types
    assert {f"log-sigma-{s}-0-mm-3D" for s in (1, 2, 3)} <= types
    assert sum(t.startswith("wavelet-") for t in types) == 8
    assert "ngtdm" not in set(table["feature_class"])
    assert not table["feature"].str.endswith("glcm_SumAverage").any()
    assert table["value"].notna().all()
    assert len(table) == 1493


def test_tidy_columns_and_provenance(extracted):
    result = extracted[CT_DEFAULT]
    table = result.features
    assert not table["feature"].str.startswith("diagnostics").any()
    assert result.diagnostics["diagnostics_Configuration_Settings"]["binWidth"] == 25
    assert result.diagnostics["diagnostics_Mask-original_VoxelNum"] == 59
    row = table.set_index("feature").loc["original_firstorder_Mean"]
    assert row["image_type"] == "original"
    assert row["feature_class"] == "firstorder"
    wavelet = table.set_index("feature").loc["wavelet-LLH_glcm_Contrast"]
    assert (wavelet["image_type"], wavelet["feature_class"]) == ("wavelet-LLH", "glcm")
    expected_hash = hashlib.sha256(CT_DEFAULT.read_bytes()).hexdigest()[:16]
    assert settings_hash(CT_DEFAULT) == expected_hash
    assert set(table["settings_hash"]) == {expected_hash}
    assert set(table["label"]) == {1}
    assert set(table["pyradiomics_version"]) == {"v3.1.4"}
    assert set(table["params_file"]) == {CT_DEFAULT.as_posix()}
    # shape volume in mm³ = voxels of the mask resampled to 1 mm iso
    voxel = table.set_index("feature").loc["original_shape_VoxelVolume", "value"]
    assert voxel == result.diagnostics["diagnostics_Mask-interpolated_VoxelNum"] * 1.0
    assert result.diagnostics["diagnostics_Mask-interpolated_Spacing"] == [1.0, 1.0, 1.0]


def _small_case(tmp_path: Path) -> tuple[sitk.Image, sitk.Image]:
    rng = np.random.default_rng(1)
    arr = rng.normal(40.0, 20.0, size=(12, 16, 16)).astype(np.int16)
    image = sitk.GetImageFromArray(arr)
    image.SetSpacing((2.0, 2.0, 3.0))
    image.SetOrigin((-10.0, 5.0, 20.0))
    lab = np.zeros(arr.shape, np.uint8)
    lab[4:8, 5:11, 5:11] = 1
    mask = sitk.GetImageFromArray(lab)
    mask.CopyInformation(image)
    return image, mask


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m.SetOrigin((-10.0, 5.0, 23.0)), "origin"),
        (lambda m: m.SetSpacing((2.0, 2.0, 3.01)), "spacing"),
        (lambda m: m.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, 1)), "direction"),
    ],
    ids=["origin", "spacing", "direction"],
)
def test_geometry_mismatch_is_one_line_naming_both_files(tmp_path, change, expected):
    image, mask = _small_case(tmp_path)
    change(mask)
    sitk.WriteImage(image, str(tmp_path / "img.nii.gz"))
    sitk.WriteImage(mask, str(tmp_path / "msk.nii.gz"))
    with pytest.raises(FeatureError) as err:
        extract_radiomics(tmp_path / "img.nii.gz", tmp_path / "msk.nii.gz", params=CT_DEFAULT)
    message = str(err.value)
    assert "\n" not in message
    assert "img.nii.gz" in message
    assert "msk.nii.gz" in message
    assert expected in message


def test_size_mismatch(tmp_path):
    image, _ = _small_case(tmp_path)
    mask = sitk.Image(16, 16, 10, sitk.sitkUInt8)
    mask.CopyInformation(sitk.RegionOfInterest(image, (16, 16, 10), (0, 0, 0)))
    mask[8, 8, 5] = 1
    sitk.WriteImage(image, str(tmp_path / "img.nii.gz"))
    sitk.WriteImage(mask, str(tmp_path / "msk.nii.gz"))
    with pytest.raises(FeatureError, match=r"size \(16, 16, 12\) vs \(16, 16, 10\)"):
        extract_radiomics(tmp_path / "img.nii.gz", tmp_path / "msk.nii.gz", params=CT_DEFAULT)


def test_sub_tolerance_shift_gets_image_geometry(tmp_path, caplog):
    """1e-4 mm (header rounding) passes our check but not SimpleITK's: the mask is aligned."""
    quiet_pyradiomics()
    no_resampling = tmp_path / "no_resampling.yaml"
    no_resampling.write_text(
        "setting:\n  binWidth: 25\nimageType:\n  Original: {}\n"
        "featureClass:\n  firstorder:\n  glcm:\n"
    )
    image, mask = _small_case(tmp_path)
    sitk.WriteImage(image, str(tmp_path / "img.nii.gz"))
    sitk.WriteImage(mask, str(tmp_path / "exact.nii.gz"))
    mask.SetOrigin((-10.0, 5.0, 20.0001))
    sitk.WriteImage(mask, str(tmp_path / "msk.nii.gz"))
    exact = extract_radiomics(
        tmp_path / "img.nii.gz", tmp_path / "exact.nii.gz", params=no_resampling
    )
    with caplog.at_level(logging.WARNING, logger="oncoflow"):
        shifted = extract_radiomics(
            tmp_path / "img.nii.gz", tmp_path / "msk.nii.gz", params=no_resampling
        )
    assert "image geometry copied" in caplog.text
    assert shifted["value"].tolist() == exact["value"].tolist()


def test_empty_label_is_a_clear_error(tmp_path):
    image, mask = _small_case(tmp_path)
    sitk.WriteImage(image, str(tmp_path / "img.nii.gz"))
    sitk.WriteImage(mask, str(tmp_path / "msk.nii.gz"))
    with pytest.raises(FeatureError, match=r"msk\.nii\.gz: label 2 is empty \(labels present"):
        extract_radiomics(
            tmp_path / "img.nii.gz", tmp_path / "msk.nii.gz", params=CT_DEFAULT, label=2
        )


def test_missing_files_and_bad_params(tmp_path):
    image, mask = _small_case(tmp_path)
    sitk.WriteImage(image, str(tmp_path / "img.nii.gz"))
    sitk.WriteImage(mask, str(tmp_path / "msk.nii.gz"))
    with pytest.raises(FeatureError, match=r"nope\.nii\.gz: image file does not exist"):
        extract_radiomics(tmp_path / "nope.nii.gz", tmp_path / "msk.nii.gz", params=CT_DEFAULT)
    with pytest.raises(FeatureError, match="params file does not exist"):
        extract_radiomics(tmp_path / "img.nii.gz", tmp_path / "msk.nii.gz", params=tmp_path / "x")
    bad = tmp_path / "bad.yaml"
    bad.write_text("setting:\n  binWidth: -3\n")
    with pytest.raises(FeatureError, match=r"bad\.yaml: invalid radiomics params file"):
        extract_radiomics(tmp_path / "img.nii.gz", tmp_path / "msk.nii.gz", params=bad)


def test_params_files_never_touch_geometry_tolerance():
    import yaml

    for path in (REPO / "params" / "radiomics").glob("*.yaml"):
        settings = yaml.safe_load(path.read_text())["setting"]
        assert "geometryTolerance" not in settings, path
        assert not settings.get("correctMask", False), path


def test_quiet_pyradiomics_levels():
    quiet_pyradiomics(verbose=True)
    assert logging.getLogger("radiomics").level == logging.INFO
    quiet_pyradiomics()
    assert logging.getLogger("radiomics").level == logging.ERROR
