"""Conversion of real scanner DICOM: the de-identified GE/Siemens series shipped with pydicom."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from oncoflow.convert.dicom import inspect_series, read_series
from oncoflow.errors import ConversionError

DIRS = Path(get_testdata_file("CT_small.dcm")).parent / "dicomdirtests"
CT5N = (
    DIRS / "98892001" / "CT5N"
)  # GE LightSpeed, 5 axial slices, 2.5 mm, stored head-first descending
CT2 = (
    DIRS / "77654033" / "CT2"
)  # 4 slices: one at -99.5 mm, three at 103-105.5 mm (a partial export)


def test_real_ct_series_matches_simpleitk():
    image, info = read_series(CT5N)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(CT5N)))
    reference = reader.Execute()
    assert image.GetSize() == reference.GetSize() == (16, 16, 5)
    np.testing.assert_allclose(image.GetSpacing(), reference.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(image.GetDirection(), reference.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(
        sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(reference), atol=0.5
    )
    assert info["warnings"] == []
    # HU from the stored values and rescale tags of the first slice by position
    first = min(CT5N.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    ds = pydicom.dcmread(first)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(sitk.GetArrayFromImage(image)[0], expected, atol=0.5)


def test_partial_export_is_refused_whatever_the_policy():
    problems = inspect_series(CT2, suv=False)
    assert len(problems) == 1
    assert "consecutive slices are missing" in problems[0]
    assert "161 between -99.5 and 103.0 mm" in problems[0]
    for policy in ("resample", "refuse"):
        with pytest.raises(ConversionError, match="no resampling can fill"):
            read_series(CT2, uneven_spacing=policy)


def test_script_on_real_series_writes_no_header_identity(tmp_path):
    from conftest import load_script

    out, sidecar = tmp_path / "ct.nii.gz", tmp_path / "ct.json"
    code = load_script("convert_dicom").main(
        ["--series", str(CT5N), "--out", str(out), "--sidecar", str(sidecar)]
    )
    assert code == 0
    ds = pydicom.dcmread(next(CT5N.iterdir()), stop_before_pixels=True)
    identity = [str(ds.get(k, "")) for k in ("PatientName", "PatientID", "StudyInstanceUID")]
    identity = [v for v in identity if len(v) >= 4]
    assert identity
    text = sidecar.read_text()
    assert json.loads(text)["source"]["manufacturer"] == "GE MEDICAL SYSTEMS"
    for value in identity:
        assert value not in text
