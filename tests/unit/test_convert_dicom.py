"""DICOM series reading: round trips through oncoflow.demo.dicomwrite, geometry vs SimpleITK, tilt,
uneven spacing, several series, unreadable files and the header-only inspection."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from oncoflow.convert import inspect_series, read_series
from oncoflow.demo.dicomwrite import FakePHI, write_ct_series, write_pet_series, write_rtstruct
from oncoflow.errors import ConversionError

PHI = FakePHI()


def _phantom(
    size=(40, 36, 14),
    spacing=(0.8, 0.9, 2.5),
    origin=(-16.0, -20.5, -30.0),
    direction=None,
) -> sitk.Image:
    """Smooth CT-like volume: air around a soft-tissue body with a dense blob, HU integers."""
    nx, ny, nz = size
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    body = ((x - nx / 2) / (nx * 0.42)) ** 2 + ((y - ny / 2) / (ny * 0.42)) ** 2
    hu = np.where(body < 1.0, 40.0, -1000.0)
    blob = np.exp(-(((x - 22) / 5.0) ** 2 + ((y - 16) / 5.0) ** 2 + ((z - 7) / 3.0) ** 2))
    hu = hu + 600.0 * blob + 3.0 * z
    image = sitk.GetImageFromArray(np.rint(hu))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    return image


def _oblique_direction() -> tuple[float, ...]:
    angle = np.deg2rad(20.0)
    rot = np.array(
        [[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]]
    )
    return tuple(float(v) for v in rot.ravel())


def _sitk_read(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


@pytest.mark.parametrize("direction", [None, _oblique_direction()], ids=["axial", "oblique"])
def test_clean_series_matches_simpleitk_and_source(tmp_path, direction):
    source = _phantom(direction=direction)
    files = write_ct_series(source, tmp_path / "ct", phi=PHI, seed=1)
    assert len(files) == source.GetSize()[2]
    image, info = read_series(tmp_path / "ct")
    ref = _sitk_read(tmp_path / "ct")

    for ours, theirs, src in (
        (image.GetOrigin(), ref.GetOrigin(), source.GetOrigin()),
        (image.GetSpacing(), ref.GetSpacing(), source.GetSpacing()),
        (image.GetDirection(), ref.GetDirection(), source.GetDirection()),
    ):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
        np.testing.assert_allclose(ours, src, atol=1e-6)
    assert image.GetSize() == ref.GetSize() == source.GetSize()
    values = sitk.GetArrayFromImage(image)
    assert values.dtype == np.float32
    np.testing.assert_allclose(values, sitk.GetArrayFromImage(ref), atol=0.5)
    assert np.max(np.abs(values - sitk.GetArrayFromImage(source))) <= 0.5
    assert info["warnings"] == []
    assert info["corrections"] == []
    assert info["source"]["modality"] == "CT"
    assert info["source"]["n_files"] == len(files)
    assert info["geometry"]["size"] == list(source.GetSize())


def test_files_are_unordered_and_reading_ignores_names_and_instance_numbers(tmp_path):
    source = _phantom(size=(16, 16, 10))
    files = write_ct_series(source, tmp_path / "ct", phi=PHI, seed=2)
    names = [p.name for p in files]  # slice order
    assert names != sorted(names)
    # scramble InstanceNumber: the reader must sort by position only
    import pydicom

    for k, path in enumerate(files):
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = (7 * k) % len(files) + 1
        ds.save_as(path)
    image, _ = read_series(tmp_path / "ct")
    np.testing.assert_allclose(
        sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(source), atol=0.5
    )


def test_uids_deterministic_for_seed(tmp_path):
    import pydicom

    source = _phantom(size=(8, 8, 3))
    a = write_ct_series(source, tmp_path / "a", phi=PHI, seed=5)
    b = write_ct_series(source, tmp_path / "b", phi=PHI, seed=5)
    c = write_ct_series(source, tmp_path / "c", phi=PHI, seed=6)
    assert [p.name for p in a] == [p.name for p in b]
    uid = [pydicom.dcmread(p[0]).SeriesInstanceUID for p in (a, b, c)]
    assert uid[0] == uid[1] != uid[2]
    pet = write_pet_series(
        sitk.Cast(source * 0 + 1, sitk.sitkFloat32), tmp_path / "p", phi=PHI, seed=5
    )
    ct_ds, pet_ds = pydicom.dcmread(a[0]), pydicom.dcmread(pet[0])
    assert ct_ds.FrameOfReferenceUID == pet_ds.FrameOfReferenceUID
    assert ct_ds.StudyInstanceUID == pet_ds.StudyInstanceUID
    assert ct_ds.SeriesInstanceUID != pet_ds.SeriesInstanceUID
    assert str(ct_ds.PatientName) == PHI.patient_name
    assert ct_ds.RescaleIntercept == -1024


def test_tilted_series_refused_with_angle(tmp_path):
    write_ct_series(_phantom(), tmp_path / "ct", phi=PHI, gantry_tilt_deg=15.0)
    with pytest.raises(ConversionError) as err:
        read_series(tmp_path / "ct", tilt="refuse")
    message = str(err.value)
    assert "gantry tilt of 15.0°" in message
    assert "--tilt resample" in message
    assert str(tmp_path / "ct") in message
    assert "\n" not in message


def test_tilted_series_resampled_onto_orthogonal_grid(tmp_path):
    source = _phantom()
    write_ct_series(source, tmp_path / "ct", phi=PHI, gantry_tilt_deg=15.0)
    image, info = read_series(tmp_path / "ct", tilt="resample")

    np.testing.assert_allclose(image.GetDirection(), np.eye(3).ravel(), atol=1e-9)
    np.testing.assert_allclose(image.GetSpacing(), source.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(image.GetOrigin(), source.GetOrigin(), atol=1e-6)
    # the grid covers the sheared volume: y extends by (nz - 1) * dz * tan(15°)
    shear = (source.GetSize()[2] - 1) * 2.5 * np.tan(np.deg2rad(15.0))
    assert image.GetSize()[1] == source.GetSize()[1] + int(np.ceil(shear / 0.9 - 1e-6))
    assert image.GetSize()[2] == source.GetSize()[2]
    assert any("gantry tilt of 15.0°" in w and "resampled" in w for w in info["warnings"])
    assert info["corrections"][0]["correction"] == "gantry_tilt"
    assert info["corrections"][0]["tilt_deg"] == pytest.approx(15.0, abs=0.01)

    # values: same physical content as the source (two linear interpolations in between)
    back = sitk.Resample(image, source, sitk.Transform(), sitk.sitkLinear, -5000.0)
    got = sitk.GetArrayFromImage(back)
    want = sitk.GetArrayFromImage(source)
    body = want > -500  # inside the body, away from the air/tissue step
    body[:, :, :2] = body[:, :, -2:] = False
    assert np.median(np.abs(got - want)[body]) < 2.0
    blob = want > 300
    assert np.abs(got[blob].mean() - want[blob].mean()) < 0.03 * want[blob].mean()
    assert np.max(np.abs(got - want)[blob]) < 25.0  # smooth region: two linear interpolations


def test_tilt_tag_without_shear_only_warns(tmp_path):
    import pydicom

    source = _phantom(size=(12, 12, 5))
    files = write_ct_series(source, tmp_path / "ct", phi=PHI)
    for path in files:
        ds = pydicom.dcmread(path)
        ds.GantryDetectorTilt = "12"
        ds.save_as(path)
    image, info = read_series(tmp_path / "ct", tilt="refuse")
    assert image.GetSize() == source.GetSize()
    assert "no resampling needed" in info["warnings"][0]
    assert inspect_series(tmp_path / "ct", suv=False, tilt="refuse") == []


POSITIONS_GAP = [-30.0, -27.5, -25.0, -22.5, -20.0, -15.0, -12.5, -10.0, -7.5, -5.0]
POSITIONS_UNEVEN = [-30.0, -27.5, -25.0, -22.0, -20.0, -17.5, -15.0, -12.5, -10.0, -7.5]


def test_missing_slice_refused_and_reported(tmp_path):
    source = _phantom(size=(16, 16, 10))
    write_ct_series(source, tmp_path / "ct", phi=PHI, slice_positions_mm=POSITIONS_GAP)
    with pytest.raises(ConversionError) as err:
        read_series(tmp_path / "ct", uneven_spacing="refuse")
    message = str(err.value)
    assert "slice spacing is not uniform: 2.5 to 5 mm" in message
    assert "missing slice(s): 1 between -20.0 and -15.0 mm" in message
    assert "--uneven-spacing resample" in message


def test_uneven_spacing_resampled_to_median(tmp_path):
    # values linear along z: linear interpolation reproduces them exactly
    z_mm = np.asarray(POSITIONS_UNEVEN)
    arr = np.broadcast_to((10.0 * (z_mm + 30.0))[:, None, None], (10, 12, 14)).copy()
    source = sitk.GetImageFromArray(arr)
    source.SetSpacing((1.0, 1.0, 2.5))
    source.SetOrigin((0.0, 0.0, -30.0))
    write_ct_series(source, tmp_path / "ct", phi=PHI, slice_positions_mm=POSITIONS_UNEVEN)
    image, info = read_series(tmp_path / "ct")
    assert image.GetSpacing()[2] == pytest.approx(2.5)
    assert image.GetSize() == (14, 12, 10)  # -30 .. -7.5 by 2.5
    got = sitk.GetArrayFromImage(image)[:, 5, 5]
    want = 10.0 * (np.arange(10) * 2.5)
    np.testing.assert_allclose(got, want, atol=0.5)
    assert info["corrections"][0]["correction"] == "uneven_slice_spacing"
    assert "resampled (linear) to 2.5 mm" in info["warnings"][0]


def test_uneven_within_one_percent_is_accepted(tmp_path):
    positions = [0.0, 2.5, 5.01, 7.5, 10.0]
    write_ct_series(
        _phantom(size=(8, 8, 5)), tmp_path / "ct", phi=PHI, slice_positions_mm=positions
    )
    _, info = read_series(tmp_path / "ct", uneven_spacing="refuse")
    assert info["warnings"] == []


def test_several_series_refused_naming_them(tmp_path):
    write_ct_series(_phantom(size=(8, 8, 4)), tmp_path / "ct", phi=PHI, series_description="venous")
    write_ct_series(
        _phantom(size=(8, 8, 4)), tmp_path / "other", phi=PHI, series_description="arterial", seed=9
    )
    for path in (tmp_path / "other").iterdir():
        shutil.copy(path, tmp_path / "ct" / f"x{path.name}")
    with pytest.raises(ConversionError) as err:
        read_series(tmp_path / "ct")
    message = str(err.value)
    assert "holds 2 series" in message
    assert "'venous'" in message
    assert "'arterial'" in message
    problems = inspect_series(tmp_path / "ct", suv=False)
    assert len(problems) == 1
    assert "holds 2 series" in problems[0]


def test_unreadable_file_refused_and_listed(tmp_path):
    write_ct_series(_phantom(size=(8, 8, 4)), tmp_path / "ct", phi=PHI)
    (tmp_path / "ct" / "notes.txt").write_text("exported by PACS\n")
    with pytest.raises(ConversionError, match=r"1 file\(s\) are not readable DICOM: notes.txt"):
        read_series(tmp_path / "ct")
    problems = inspect_series(tmp_path / "ct", suv=False)
    assert problems == [f"{tmp_path / 'ct'}: 1 file(s) are not readable DICOM: notes.txt"]


def test_missing_and_empty_folder(tmp_path):
    with pytest.raises(ConversionError, match="does not exist"):
        read_series(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConversionError, match="folder is empty"):
        read_series(tmp_path / "empty")
    assert "does not exist" in inspect_series(tmp_path / "nope", suv=True)[0]


def test_rtstruct_inside_series_folder_is_ignored(tmp_path):
    source = _phantom(size=(10, 10, 4))
    write_ct_series(source, tmp_path / "ct", phi=PHI)
    labels = sitk.Image(source.GetSize(), sitk.sitkUInt8)
    labels.CopyInformation(source)
    labels[3:6, 3:6, 1] = 1
    write_rtstruct(
        labels, tmp_path / "ct", tmp_path / "ct" / "rs.dcm", roi_names={1: "GTV"}, phi=PHI
    )
    image, info = read_series(tmp_path / "ct")
    assert image.GetSize() == source.GetSize()
    assert info["source"]["ignored_objects"] == ["a RTSTRUCT object"]


def test_inspect_series_problem_lists(tmp_path):
    source = _phantom(size=(12, 12, 6))
    write_ct_series(source, tmp_path / "clean", phi=PHI)
    write_ct_series(source, tmp_path / "tilted", phi=PHI, gantry_tilt_deg=-10.0)
    write_ct_series(
        source, tmp_path / "gap", phi=PHI, slice_positions_mm=[0.0, 2.5, 5.0, 10.0, 12.5, 15.0]
    )
    suv = sitk.Cast(sitk.Abs(source) / 100.0, sitk.sitkFloat32)
    write_pet_series(suv, tmp_path / "pet", phi=PHI)
    write_pet_series(suv, tmp_path / "pet_broken", phi=PHI, omit_tags=("PatientWeight", "Units"))

    assert (
        inspect_series(tmp_path / "clean", suv=False, tilt="refuse", uneven_spacing="refuse") == []
    )
    assert inspect_series(tmp_path / "tilted", suv=False) == []  # resample policy: fine
    tilted = inspect_series(tmp_path / "tilted", suv=False, tilt="refuse")
    assert len(tilted) == 1
    assert "gantry tilt of -10.0°" in tilted[0]
    assert inspect_series(tmp_path / "gap", suv=False) == []
    gap = inspect_series(tmp_path / "gap", suv=False, uneven_spacing="refuse")
    assert len(gap) == 1
    assert "missing slice(s): 1 between 5.0 and 10.0 mm" in gap[0]
    assert inspect_series(tmp_path / "pet", suv=True) == []
    broken = inspect_series(tmp_path / "pet_broken", suv=True)
    assert len(broken) == 2
    assert any("missing tag Units" in p for p in broken)
    assert any("missing tag PatientWeight" in p for p in broken)
    assert all(p.startswith(str(tmp_path / "pet_broken")) for p in broken)
    assert inspect_series(tmp_path / "pet_broken", suv=False) == []
    assert inspect_series(tmp_path / "clean", suv=True) == [
        f"{tmp_path / 'clean'}: expected a PET series (Modality PT) for SUV conversion, "
        "found Modality CT"
    ]


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_jpeg_ls_lossless.dcm"])
def test_real_scanner_files_match_simpleitk(tmp_path, name):
    """Real-world headers from pydicom's test data (a GE CT slice, a JPEG-LS compressed MR)."""
    from pydicom.data import get_testdata_file

    folder = tmp_path / "series"
    folder.mkdir()
    shutil.copy(get_testdata_file(name), folder / "IM0001")
    image, info = read_series(folder)
    ref = sitk.ReadImage(str(folder / "IM0001"))
    assert image.GetSize() == ref.GetSize()
    np.testing.assert_allclose(image.GetOrigin(), ref.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(image.GetSpacing()[:2], ref.GetSpacing()[:2], atol=1e-6)
    np.testing.assert_allclose(image.GetDirection(), ref.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(ref))
    assert info["source"]["n_slices"] == 1
