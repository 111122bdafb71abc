"""SUVbw: round trips through the PET writer, midnight crossing, DateTime, ADMIN, missing tags."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset

from oncoflow.convert.series import dicom_to_image
from oncoflow.convert.suv import parse_dt, parse_tm, suv_parameters
from oncoflow.demo.dicomwrite import FakePHI, write_ct_series, write_pet_series
from oncoflow.errors import ConversionError

PHI = FakePHI()
F18 = 6586.2


def _suv_image() -> sitk.Image:
    """Background ~0.5-3 with a hot lesion (SUV 12-25) and an empty first slice."""
    nz, ny, nx = 8, 20, 24
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    suv = 0.5 + 1.0 * (x / nx) + 11.0 * np.exp(-(((x - 12) / 3) ** 2 + ((y - 9) / 3) ** 2))
    suv = suv * (z > 0) * (1.0 + 0.15 * z)  # per-slice peaks differ, slice 0 is empty
    image = sitk.GetImageFromArray(suv.astype(np.float32))
    image.SetSpacing((4.0, 4.0, 3.0))
    image.SetOrigin((-48.0, -40.0, -10.0))
    return image


def _roundtrip(tmp_path, **kwargs) -> tuple[np.ndarray, np.ndarray, dict]:
    source = _suv_image()
    write_pet_series(source, tmp_path / "pet", phi=PHI, **kwargs)
    image, info, _ = dicom_to_image(tmp_path / "pet", suv=True)
    return sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(source), info


def _relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """Largest error relative to the slice's peak (16-bit storage with a per-slice slope)."""
    err = 0.0
    for g, w in zip(got, want, strict=True):
        if w.max() > 0:
            err = max(err, float(np.max(np.abs(g - w)) / w.max()))
        else:
            assert np.all(g == 0)
    return err


def test_suv_roundtrip_same_day(tmp_path):
    got, want, info = _roundtrip(
        tmp_path,
        weight_kg=82.5,
        injected_dose_bq=3.1e8,
        injection_time="091500.00",
        series_time="102745.50",
    )
    assert _relative_error(got, want) < 1e-3
    lesion = want > 10
    assert np.abs(got[lesion].mean() / want[lesion].mean() - 1) < 1e-4
    suv = info["suv"]
    assert suv["delta_t_s"] == pytest.approx(4365.5)
    assert suv["decay_factor"] == pytest.approx(2 ** (-4365.5 / F18))
    assert suv["factor"] == pytest.approx(82500 / (3.1e8 * 2 ** (-4365.5 / F18)))
    assert suv["crossed_midnight"] is False
    assert info["values"] == "SUVbw (g/mL)"


def test_suv_roundtrip_injection_before_midnight(tmp_path):
    got, want, info = _roundtrip(tmp_path, injection_time="233000", series_time="003500")
    assert _relative_error(got, want) < 1e-3
    assert info["suv"]["delta_t_s"] == pytest.approx(3900.0)
    assert info["suv"]["crossed_midnight"] is True
    assert any("after midnight" in w for w in info["warnings"])


def test_start_datetime_preferred(tmp_path):
    got, want, info = _roundtrip(
        tmp_path, injection_time="235000", series_time="005000", start_datetime=True
    )
    assert _relative_error(got, want) < 1e-3
    assert info["suv"]["delta_t_s"] == pytest.approx(3600.0)
    assert info["suv"]["time_source"].startswith("RadiopharmaceuticalStartDateTime")
    assert info["suv"]["crossed_midnight"] is True


def _header(**changes) -> Dataset:
    ds = Dataset()
    ds.Units = "BQML"
    ds.DecayCorrection = "START"
    ds.PatientWeight = "70"
    ds.SeriesDate = "20240102"
    ds.SeriesTime = "110000"
    item = Dataset()
    item.RadiopharmaceuticalStartTime = "100000"
    item.RadionuclideTotalDose = "400000000"
    item.RadionuclideHalfLife = str(F18)
    ds.RadiopharmaceuticalInformationSequence = [item]
    for key, value in changes.items():
        target = item if key.startswith("Radio") else ds
        if value is None:
            delattr(target, key)
        else:
            setattr(target, key, value)
    return ds


def test_factor_formula():
    params = suv_parameters(_header(), where="x")
    assert params.delta_t_s == 3600.0
    assert params.factor == pytest.approx(70000 / (4e8 * 2 ** (-3600 / F18)))
    # SUV of 1 g/mL corresponds to the decayed dose spread over the body weight
    activity = 4e8 * 2 ** (-3600 / F18) / 70000
    assert activity * params.factor == pytest.approx(1.0)


def test_admin_decay_correction_has_no_decay_factor():
    params = suv_parameters(_header(DecayCorrection="ADMIN"), where="x")
    assert params.decay_factor == 1.0
    assert params.factor == pytest.approx(70000 / 4e8)


def test_datetime_two_days_and_bad_order():
    params = suv_parameters(
        _header(RadiopharmaceuticalStartDateTime="20240101233000.000000"), where="x"
    )
    assert params.delta_t_s == pytest.approx(11.5 * 3600)
    with pytest.raises(ConversionError, match="starts before the injection"):
        suv_parameters(_header(RadiopharmaceuticalStartDateTime="20240102120000"), where="x")


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("PatientWeight", "missing tag PatientWeight (0010,1030)"),
        ("RadionuclideTotalDose", "missing tag RadionuclideTotalDose (0018,1074)"),
        ("RadionuclideHalfLife", "missing tag RadionuclideHalfLife (0018,1075)"),
        ("RadiopharmaceuticalStartTime", "missing tag RadiopharmaceuticalStartTime (0018,1072)"),
        ("Units", "missing tag Units (0054,1001)"),
    ],
)
def test_missing_tag_named(tag, expected):
    with pytest.raises(ConversionError) as err:
        suv_parameters(_header(**{tag: None}), where="pet/P001")
    assert str(err.value).startswith(f"pet/P001: {expected}")
    assert "\n" not in str(err.value)


def test_missing_tag_from_written_series(tmp_path):
    write_pet_series(_suv_image(), tmp_path / "pet", phi=PHI, omit_tags=["RadionuclideTotalDose"])
    with pytest.raises(ConversionError, match="missing tag RadionuclideTotalDose"):
        dicom_to_image(tmp_path / "pet", suv=True)
    image, info, _ = dicom_to_image(tmp_path / "pet", suv=False)  # activity is still readable
    assert info["values"] == "Bq/mL"
    assert float(sitk.GetArrayFromImage(image).max()) > 1000


@pytest.mark.filterwarnings("ignore:Invalid value for VR TM")
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"Units": "CNTS"}, "Units (0054,1001) is CNTS, only BQML"),
        ({"PatientWeight": "0"}, "PatientWeight (0010,1030) is 0 kg"),
        ({"DecayCorrection": "NONE"}, "DecayCorrection (0054,1102) is NONE"),
        ({"RadiopharmaceuticalStartTime": "256000"}, "not a valid time"),
    ],
)
def test_invalid_values_refused(changes, message):
    with pytest.raises(ConversionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        suv_parameters(_header(**changes), where="x")


def test_suv_refused_for_ct(tmp_path):
    write_ct_series(_suv_image(), tmp_path / "ct", phi=PHI)
    with pytest.raises(ConversionError, match="SUV conversion asked for a CT series"):
        dicom_to_image(tmp_path / "ct", suv=True)


def test_per_slice_slopes_differ(tmp_path):
    files = write_pet_series(_suv_image(), tmp_path / "pet", phi=PHI)
    slopes = {float(pydicom.dcmread(p, stop_before_pixels=True).RescaleSlope) for p in files}
    assert len(slopes) >= 3


def test_time_parsers():
    assert parse_tm("103000.5") == 37800.5
    assert parse_tm("10:30:00") == 37800.0
    assert parse_tm("1030") == 37800.0
    assert parse_dt("20240102103000.25+0100") == dt.datetime(2024, 1, 2, 10, 30, 0, 250000)
    with pytest.raises(ValueError, match="not a DICOM time"):
        parse_tm("noon")
