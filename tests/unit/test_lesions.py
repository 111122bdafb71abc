"""Lesion crops: centring, side = margin x baseline extent, negatives never on the lesion."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from oncoflow.errors import FeatureError
from oncoflow.lesions.crops import crop_square, lesion_box, max_inplane_extent_mm
from oncoflow.lesions.extract import LesionSettings, extract_patient, write_npz

SHAPE = (20, 64, 64)  # z, y, x
SPACING_XYZ = (1.5, 1.5, 4.0)


def _ellipsoid(centre, radii) -> np.ndarray:
    z, y, x = np.indices(SHAPE)
    d = sum(((a - c) / r) ** 2 for a, c, r in zip((z, y, x), centre, radii, strict=True))
    return d <= 1.0


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING_XYZ)
    sitk.WriteImage(image, str(path))


@pytest.fixture
def patient(tmp_path):
    """Two time points; the lesion grows from radius 5 to 8 px in plane; organ around it."""
    rng = np.random.default_rng(0)
    converted = tmp_path / "converted"
    for tp, (radius, centre) in enumerate([(5, (10, 30, 34)), (8, (11, 28, 30))]):
        organ = _ellipsoid((10, 32, 32), (8, 20, 24))
        lesion = _ellipsoid(centre, (2.5, radius, radius))
        mask = np.where(lesion, 2, np.where(organ, 1, 0)).astype(np.uint8)
        ct = rng.normal(40, 5, SHAPE).astype(np.float32) + 60 * lesion
        for phase in ("CT_arterial", "CT_venous"):
            _write(converted / "P1" / str(tp) / f"{phase}.nii.gz", ct)
            _write(converted / "P1" / str(tp) / f"{phase}_mask.nii.gz", mask)
    return converted


def test_crop_is_centred_exactly_even_at_the_border():
    image = np.zeros((40, 40), np.float32)
    image[2, 3] = 1.0  # a voxel near the corner
    crop = crop_square(image, (2, 3), (9, 9), 9, order=0)
    assert crop[4, 4] == 1.0
    assert crop.sum() == 1.0


def test_crops_centred_with_side_from_baseline_extent(patient, tmp_path):
    settings = LesionSettings.from_mapping(
        {
            "images": ["CT_arterial", "CT_venous"],
            "lesion_labels": [2],
            "organ_labels": [1],
            "size": 48,
            "margin": 2.0,
            "window": [-100, 200],
            "negatives": 3,
        }
    )
    written = extract_patient(patient, "P1", settings, tmp_path / "out", seed=4)
    assert [p.name for p in written] == ["0.npz", "1.npz"]
    base_mask = sitk.GetArrayFromImage(sitk.ReadImage(str(patient / "P1/0/CT_venous_mask.nii.gz")))
    expected_side = 2.0 * max_inplane_extent_mm(base_mask == 2, SPACING_XYZ[::-1])
    assert expected_side == pytest.approx(2 * 11 * 1.5)  # 11 px across (radius 5) x 1.5 mm
    for path in written:
        data = np.load(path)
        tp = int(data["timepoint"])
        mask = sitk.GetArrayFromImage(
            sitk.ReadImage(str(patient / f"P1/{tp}/CT_venous_mask.nii.gz"))
        )
        lesion = mask == 2
        assert float(data["CT_venous/side_mm"]) == pytest.approx(
            expected_side
        )  # baseline side at every tp
        np.testing.assert_allclose(data["CT_venous/side_vox"], [expected_side / 1.5] * 2)
        slices = data["CT_venous/slices"]
        assert sorted(slices) == sorted(np.nonzero(lesion.any(axis=(1, 2)))[0])
        np.testing.assert_allclose(
            data["CT_venous/area_mm2"], lesion[slices].sum(axis=(1, 2)) * 1.5 * 1.5
        )
        # the lesion centre lands in the centre of the crop: centroid of the cropped mask of the
        # largest slice (a symmetric ellipsoid) at (size - 1) / 2
        crops = data["CT_venous/lesion_mask"]
        largest = crops[np.argmax(crops.sum(axis=(1, 2)))]
        ys, xs = np.nonzero(largest)
        assert ys.mean() == pytest.approx(23.5, abs=0.6)
        assert xs.mean() == pytest.approx(23.5, abs=0.6)
        assert data["CT_venous/lesion"].shape == (len(slices), 48, 48)
        assert data["CT_venous/lesion"].min() >= 0.0
        assert data["CT_venous/lesion"].max() <= 1.0
        # negatives: same side, never touching the lesion in their slice
        boxes = data["CT_venous/negative_boxes"]
        assert len(boxes) > 0
        assert len(data["CT_venous/negative"]) == len(boxes)
        half = data["CT_venous/side_vox"] / 2
        for z, cy, cx in boxes:
            y0, y1 = int(np.floor(cy - half[0] + 0.5)), int(np.ceil(cy + half[0] - 0.5))
            x0, x1 = int(np.floor(cx - half[1] + 0.5)), int(np.ceil(cx + half[1] - 0.5))
            region = lesion[int(z), max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1]
            assert not region.any()
        # organ context slices lie outside the lesion z-range and contain organ
        ctx = data["CT_venous/context_slices"]
        assert len(ctx) > 0
        assert all(z < slices.min() or z > slices.max() for z in ctx)
        assert all((mask[z] == 1).any() for z in ctx)


def test_resample_onto_reference_grid_uses_its_mask(patient, tmp_path):
    # a PET on a coarser grid, cut with the CT's mask on the CT grid
    pet = sitk.GetImageFromArray(np.full((10, 32, 32), 3.0, np.float32))
    pet.SetSpacing((3.0, 3.0, 8.0))
    sitk.WriteImage(pet, str(patient / "P1/0/PET.nii.gz"))
    settings = LesionSettings.from_mapping(
        {
            "images": ["CT_venous", "PET"],
            "lesion_labels": [2],
            "context_labels": [1],
            "resample_onto": {"PET": "CT_venous"},
            "size": 32,
        }
    )
    data = np.load(extract_patient(patient, "P1", settings, tmp_path / "pet")[0])
    np.testing.assert_array_equal(data["PET/slices"], data["CT_venous/slices"])
    assert data["PET/lesion"].mean() == pytest.approx(3.0, rel=1e-3)  # SUV kept
    assert data["CT_venous/organ_patch"].shape == (len(data["CT_venous/slices"]), 32, 32)


def test_stem_without_any_lesion_is_named(patient, tmp_path):
    empty = np.zeros(SHAPE, np.uint8)
    for tp in (0, 1):
        _write(patient / f"P1/{tp}/CT_venous_mask.nii.gz", empty)
    settings = LesionSettings.from_mapping({"images": ["CT_venous"], "lesion_labels": [2]})
    with pytest.raises(FeatureError, match="patient P1: CT_venous has no lesion voxel"):
        extract_patient(patient, "P1", settings, tmp_path / "none")


def test_lesion_box_geometry():
    lesion = _ellipsoid((10, 30, 34), (2.5, 5, 5))
    box = lesion_box(lesion, SPACING_XYZ[::-1], side_mm=30.0)
    assert box.centre == (10.0, 30.0, 34.0)
    assert box.side_vox == (20.0, 20.0)
    assert box.bbox == (25, 35, 29, 39)


def test_predicted_masks_replace_the_given_ones(patient, tmp_path):
    """A segmentation model's predicted mask (<patient>_tp<tp>.nii.gz) is cut instead."""
    predicted = tmp_path / "predict" / "fold_0"
    moved = _ellipsoid((6, 40, 20), (1.5, 4, 4))  # somewhere else than the given lesion
    for tp in (0, 1):
        _write(predicted / f"P1_tp{tp}.nii.gz", np.where(moved, 2, 0).astype(np.uint8))
    settings = LesionSettings.from_mapping({"images": ["CT_venous"], "lesion_labels": [2]})
    written = extract_patient(
        patient, "P1", settings, tmp_path / "pred", predicted_masks=[tmp_path / "x", predicted]
    )
    data = np.load(written[0])
    np.testing.assert_array_equal(data["CT_venous/slices"], np.nonzero(moved.any(axis=(1, 2)))[0])
    np.testing.assert_allclose(data["CT_venous/centre_vox"], [6, 40, 20])
    (predicted / "P1_tp1.nii.gz").unlink()
    with pytest.raises(FeatureError, match=r"patient P1, time point 1: no predicted mask P1_tp1"):
        extract_patient(patient, "P1", settings, tmp_path / "pred2", predicted_masks=[predicted])


def test_npz_is_readable_and_the_same_bytes_every_run(tmp_path) -> None:
    arrays = {
        "patient_id": np.array("P1"),
        "timepoint": np.int64(2),
        "CT/lesion": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        "CT/slices": np.array([3, 4]),
    }
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    write_npz(first, arrays)
    write_npz(second, arrays)
    assert first.read_bytes() == second.read_bytes()
    # no time of writing inside: the entries carry the zip format's earliest date
    with zipfile.ZipFile(first) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    with np.load(first) as data:
        assert sorted(data.files) == sorted(arrays)
        assert str(data["patient_id"]) == "P1"
        assert int(data["timepoint"]) == 2
        np.testing.assert_array_equal(data["CT/lesion"], arrays["CT/lesion"])
        assert data["CT/lesion"].dtype == np.float32
