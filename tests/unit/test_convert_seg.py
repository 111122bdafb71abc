"""DICOM SEG masks: against the RTSTRUCT of the same structures, a highdicom reference, errors."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk

from oncoflow.cohort import read_table
from oncoflow.convert import convert_patient, rasterize_dicom_mask, read_series
from oncoflow.demo.dicomwrite import FakePHI, write_ct_series, write_rtstruct, write_seg
from oncoflow.errors import ConversionError
from oncoflow.validate import files

PHI = FakePHI()
NAMES = {1: "Lung", 2: "GTV"}


def _labels(shape: tuple[int, int, int]) -> np.ndarray:
    """Lung = 1 (ellipsoid), lesion = 2 (a sphere inside it), ``(z, y, x)``."""
    nz, ny, nx = shape
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    lung = ((x - 22) / 15.0) ** 2 + ((y - 20) / 12.0) ** 2 + ((z - 8) / 6.0) ** 2 < 1.0
    lesion = ((x - 28) / 4.5) ** 2 + ((y - 18) / 4.5) ** 2 + ((z - 9) / 2.2) ** 2 < 1.0
    return np.where(lesion, 2, np.where(lung, 1, 0)).astype(np.uint8)


@pytest.fixture(scope="module")
def ct(tmp_path_factory) -> tuple[Path, sitk.Image, np.ndarray]:
    """A CT series with an RTSTRUCT and a binary and a fractional SEG of the same label map."""
    root = tmp_path_factory.mktemp("seg")
    image = sitk.Image((48, 40, 16), sitk.sitkFloat32) - 1000.0
    image.SetSpacing((0.9, 0.9, 2.0))
    image.SetOrigin((-21.0, -18.0, -15.0))
    write_ct_series(image, root / "ct", phi=PHI, seed=4)
    labels = _labels(image.GetSize()[::-1])
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(image)
    write_rtstruct(label_image, root / "ct", root / "rs.dcm", roi_names=NAMES, phi=PHI, seed=4)
    write_seg(label_image, root / "ct", root / "seg.dcm", segment_names=NAMES, seed=4)
    write_seg(
        label_image, root / "ct", root / "frac.dcm", segment_names=NAMES, seed=5, fractional=True
    )
    return root, read_series(root / "ct")[0], labels


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


def test_seg_and_rtstruct_of_the_same_structures_agree(ct):
    root, reference, labels = ct
    from_rs, _ = rasterize_dicom_mask(root / "rs.dcm", reference, ["Lung", "GTV"])
    from_seg, info = rasterize_dicom_mask(root / "seg.dcm", reference, ["Lung", "GTV"])
    rs, seg = sitk.GetArrayFromImage(from_rs), sitk.GetArrayFromImage(from_seg)
    for label in (1, 2):
        assert _dice(rs == label, seg == label) >= 0.95
    np.testing.assert_array_equal(seg, labels)  # the SEG holds the label map voxel for voxel
    assert info["source"] == {"format": "SEG", "file": "seg.dcm", "segmentation_type": "BINARY"}
    assert [(s["segment"], s["name"]) for s in info["segments"]] == [(1, "Lung"), (2, "GTV")]
    assert from_seg.GetOrigin() == reference.GetOrigin()


def test_frames_stored_out_of_order_are_placed_by_position(ct):
    root, _, _ = ct
    seg = pydicom.dcmread(root / "seg.dcm")
    z = [
        float(frame.PlanePositionSequence[0].ImagePositionPatient[2])
        for frame in seg.PerFrameFunctionalGroupsSequence
    ]
    assert len(set(z)) > 2
    assert z != sorted(z)
    assert z != sorted(z, reverse=True)


def test_a_converted_seg_equals_highdicoms_own_volume(ct, tmp_path):
    """The mask convert_patient writes for a SEG row equals highdicom's volume of the SEG
    matched (permuted, flipped, padded; not resampled) to the CT's volume, saved as NIfTI."""
    root, _, _ = ct
    rows = [["P1", 0, "CT", "-", str(root / "ct"), str(root / "seg.dcm"), "GTV", "A"]]
    columns = ["patient_id", "timepoint", "modality", "series", "path", "mask_path", "mask_roi"]
    pd.DataFrame(rows, columns=[*columns, "site"]).to_csv(tmp_path / "images.csv", index=False)
    convert_patient(tmp_path, read_table(tmp_path, "images"), tmp_path / "out", patient_id="P1")
    ours = nib.as_closest_canonical(nib.load(tmp_path / "out" / "0" / "CT_mask.nii.gz"))

    series = [pydicom.dcmread(p) for p in sorted((root / "ct").iterdir())]
    ct_volume = hd.get_volume_from_series(series)
    segmentation = hd.seg.segread(root / "seg.dcm")
    gtv = segmentation.get_volume(segment_numbers=[2], combine_segments=True)
    nib.save(gtv.match_geometry(ct_volume).to_nibabel(), tmp_path / "reference.nii.gz")
    # both in RAS+ axis order (permutes and flips the arrays, never resamples)
    reference = nib.as_closest_canonical(nib.load(tmp_path / "reference.nii.gz"))
    np.testing.assert_allclose(ours.affine, reference.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(ours.dataobj) > 0, np.asarray(reference.dataobj) > 0)
    assert int((np.asarray(ours.dataobj) > 0).sum()) > 100


def test_fractional_segments_count_a_voxel_from_one_half(ct, tmp_path):
    root, reference, labels = ct
    from_frac, info = rasterize_dicom_mask(root / "frac.dcm", reference, [])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(from_frac), labels)
    assert info["source"]["segmentation_type"] == "FRACTIONAL"
    # probabilities 0.3 and 0.8: only the second is in
    series = [pydicom.dcmread(p) for p in sorted((root / "ct").iterdir())]
    series.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    probability = np.zeros(labels.shape, dtype=np.float32)
    probability[8, 10:14, 10:14] = 0.3
    probability[8, 20:23, 20:23] = 0.8
    seg = hd.seg.Segmentation(
        source_images=series,
        pixel_array=probability,
        segmentation_type="FRACTIONAL",
        segment_descriptions=[
            hd.seg.SegmentDescription(
                segment_number=1,
                segment_label="p",
                segmented_property_category=hd.sr.CodedConcept("85756007", "SCT", "Tissue"),
                segmented_property_type=hd.sr.CodedConcept("108369006", "SCT", "Neoplasm"),
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=hd.AlgorithmIdentificationSequence(
                    name="test", version="1", family=hd.sr.CodedConcept("123109", "DCM", "x")
                ),
            )
        ],
        series_instance_uid=hd.UID(),
        series_number=2,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="test",
        manufacturer_model_name="test",
        software_versions="1",
        device_serial_number="1",
    )
    seg.save_as(tmp_path / "p.dcm")
    mask, info = rasterize_dicom_mask(tmp_path / "p.dcm", reference, ["1"])
    array = sitk.GetArrayFromImage(mask)
    assert int(array.sum()) == 9
    assert array[8, 21, 21] == 1
    assert array[8, 11, 11] == 0


def test_segments_by_number_or_label_and_clear_errors(ct):
    root, reference, labels = ct
    mask, _ = rasterize_dicom_mask(root / "seg.dcm", reference, ["gtv"])  # case-insensitive
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mask), labels == 2)
    mask, _ = rasterize_dicom_mask(root / "seg.dcm", reference, ["2", "1"])  # by number
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mask) == 2, labels == 1)
    with pytest.raises(ConversionError, match=r"seg\.dcm: segment 'Liver' not found; segments"):
        rasterize_dicom_mask(root / "seg.dcm", reference, ["Liver"])
    with pytest.raises(ConversionError, match="another FrameOfReferenceUID"):
        rasterize_dicom_mask(root / "seg.dcm", reference, [], frame_of_reference_uid="1.2.3")
    with pytest.raises(ConversionError, match="not an RTSTRUCT"):
        rasterize_dicom_mask(next((root / "ct").iterdir()), reference, ["GTV"])


def test_validation_checks_the_segments_a_row_names(ct):
    root, _, _ = ct
    check = files.check_dicom_mask
    assert check(root / "seg.dcm", roi="GTV+1", label="seg.dcm", patient_id="P") == []
    assert check(root / "seg.dcm", roi=None, label="seg.dcm", patient_id="P") == []
    found = check(root / "seg.dcm", roi="GTV+Liver", label="seg.dcm", patient_id="P")
    assert [p.check for p in found] == ["seg"]
    assert (
        found[0].message
        == "segment 'Liver' not found; segments (number 'label'): 1 'Lung', 2 'GTV'"
    )
