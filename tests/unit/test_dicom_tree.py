"""The messy DICOM export tree is written as its manifest says (for the importer tests)."""

from __future__ import annotations

import re
import shutil
from collections import Counter, defaultdict

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError
from pydicom.uid import CTImageStorage, MRImageStorage, PositronEmissionTomographyImageStorage

from oncoflow.convert import rasterize_dicom_mask, read_series
from oncoflow.demo.dicomtree import SITES, write_dicom_tree
from oncoflow.demo.dicomwrite import (
    DOSE_REPORT_SOP_CLASS,
    SECONDARY_CAPTURE_SOP_CLASS,
    FakePHI,
    write_mr_series,
)

SOP_CLASS = {
    "CT": CTImageStorage,
    "PET": PositronEmissionTomographyImageStorage,
    "MR": MRImageStorage,
}
DICOM_MODALITY = {"CT": "CT", "PET": "PT", "MR": "MR"}
SKIP_KINDS = {
    "localizer",
    "dose_report",
    "secondary_capture",
    "duplicate",
    "too_few_slices",
    "ambiguous",
    "not_dicom",
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree") / "export"
    manifest = write_dicom_tree(root, seed=0)
    headers = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            headers[path] = pydicom.dcmread(path, stop_before_pixels=True)
        except InvalidDicomError:
            continue
    return root, manifest, headers


def _series(manifest):
    for pid, patient in manifest["patients"].items():
        for study in patient["studies"]:
            for series in study["series"]:
                yield pid, study, series


def _files_of(headers, uid, folder=None):
    return {
        path: ds
        for path, ds in headers.items()
        if ds.get("SeriesInstanceUID") == uid and (folder is None or path.parent == folder)
    }


def _skipped(manifest, what):
    return [item for item in manifest["skipped"] if item["what"] == what]


def test_patients_identities_and_sites(tree):
    _, manifest, _ = tree
    patients = manifest["patients"]
    assert len(patients) >= 6
    assert all(re.fullmatch(r"MRN\d+", pid) for pid in patients)
    names = [p["name"] for p in patients.values()]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[A-Z]+\^[A-Z]+", name) for name in names)
    assert {p["institution"] for p in patients.values()} == set(SITES)


def test_modalities_and_series_names(tree):
    _, manifest, headers = tree
    found = {(s["modality"], s["series"]) for _, _, s in _series(manifest)}
    assert {("CT", "venous"), ("CT", "-"), ("PET", "-"), ("MR", "T1"), ("MR", "T2")} <= found
    assert {("MR", "T1C"), ("MR", "FLAIR"), ("MR", "DWI")} <= found
    for _, _, series in _series(manifest):
        files = _files_of(headers, series["series_uid"])
        first = next(iter(files.values()))
        if series["series"] == "venous":
            assert first.ContrastBolusAgent
            assert "VENOUS" in first.SeriesDescription
        elif series["modality"] == "CT":
            assert "ContrastBolusAgent" not in first
        if series["modality"] == "PET":
            assert first.Units == "BQML"
            assert float(first.PatientWeight) > 0
            drug = first.RadiopharmaceuticalInformationSequence[0]
            assert drug.Radiopharmaceutical == "Fluorodeoxyglucose"
            assert float(drug.RadionuclideTotalDose) > 0
            assert float(drug.RadionuclideHalfLife) == pytest.approx(6586.2)
            assert drug.RadiopharmaceuticalStartTime


def test_two_studies_on_two_dates(tree):
    _, manifest, headers = tree
    followed = [p for p in manifest["patients"].values() if len(p["studies"]) >= 2]
    assert len(followed) >= 2
    for patient in followed:
        dates = [s["study_date"] for s in patient["studies"]]
        uids = {s["study_uid"] for s in patient["studies"]}
        assert dates == sorted(dates)
        assert len(set(dates)) == len(dates) == len(uids)
    for _, study, series in _series(manifest):
        for ds in _files_of(headers, series["series_uid"]).values():
            assert ds.StudyInstanceUID == study["study_uid"]
            assert ds.StudyDate == study["study_date"]
            assert ds.AccessionNumber == study["accession_number"]


def test_series_folders_hold_the_stated_slices(tree):
    root, manifest, headers = tree
    for _, _, series in _series(manifest):
        folder = root / series["folder"]
        files = _files_of(headers, series["series_uid"], folder)
        assert len(files) == series["n_slices"], series
        sops = {ds.SOPInstanceUID for ds in files.values()}
        assert len(sops) == series["n_slices"]
        # every copy in the tree holds the same instances (a duplicate export adds none)
        everywhere = _files_of(headers, series["series_uid"])
        assert {ds.SOPInstanceUID for ds in everywhere.values()} == sops
        for ds in files.values():
            assert ds.SOPClassUID == SOP_CLASS[series["modality"]]
            assert ds.Modality == DICOM_MODALITY[series["modality"]]
            assert (ds.Rows, ds.Columns) == (32, 32)


def test_mr_sequence_tags(tree):
    _, manifest, headers = tree
    for _, _, series in _series(manifest):
        if series["modality"] != "MR":
            continue
        for ds in _files_of(headers, series["series_uid"]).values():
            for keyword in (
                "ScanningSequence",
                "SequenceVariant",
                "RepetitionTime",
                "EchoTime",
                "MRAcquisitionType",
                "MagneticFieldStrength",
                "SeriesDescription",
                "ProtocolName",
            ):
                assert keyword in ds, (series["series"], keyword)
            sequence = series["series"]
            assert ("ContrastBolusAgent" in ds) == (sequence == "T1C")
            assert ("InversionTime" in ds) == (sequence == "FLAIR")
            if sequence == "FLAIR":
                assert "IR" in ds.ScanningSequence
            if sequence == "DWI":
                assert ds.ScanningSequence == "EP"
            if sequence in ("T1", "T1C"):
                assert float(ds.RepetitionTime) < 1000
                assert float(ds.EchoTime) < 30
            if sequence == "T2":
                assert float(ds.RepetitionTime) > 2000
                assert float(ds.EchoTime) > 60


def _referenced_series(mask):
    if mask.Modality == "RTSTRUCT":
        frame = mask.ReferencedFrameOfReferenceSequence[0]
        series = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
        images = {item.ReferencedSOPInstanceUID for item in series.ContourImageSequence}
        return str(series.SeriesInstanceUID), str(frame.FrameOfReferenceUID), images
    series = mask.ReferencedSeriesSequence[0]
    images = {item.ReferencedSOPInstanceUID for item in series.ReferencedInstanceSequence}
    return str(series.SeriesInstanceUID), str(mask.FrameOfReferenceUID), images


def test_masks_reference_their_series(tree):
    root, manifest, headers = tree
    all_series = {str(ds.get("SeriesInstanceUID")) for ds in headers.values()}
    formats = Counter()
    for pid, _, series in _series(manifest):
        if series["mask"] is None:
            continue
        mask_info = series["mask"]
        formats[mask_info["format"]] += 1
        mask = pydicom.dcmread(root / mask_info["file"])
        assert mask.Modality == ("RTSTRUCT" if mask_info["format"] == "RTSTRUCT" else "SEG")
        assert mask.PatientID == pid
        if mask_info["format"] == "RTSTRUCT":
            names = [roi.ROIName for roi in mask.StructureSetROISequence]
        else:
            names = [segment.SegmentLabel for segment in mask.SegmentSequence]
        assert names == mask_info["names"]
        uid, frame, images = _referenced_series(mask)
        files = _files_of(headers, series["series_uid"])
        assert {str(ds.FrameOfReferenceUID) for ds in files.values()} == {frame}
        sops = {ds.SOPInstanceUID for ds in files.values()}
        if mask_info["references_missing_series"]:
            assert uid != series["series_uid"]
            assert uid not in all_series
            assert images.isdisjoint(sops)
        else:
            assert uid == series["series_uid"]
            assert images <= sops
    assert formats["RTSTRUCT"] >= 2
    assert formats["SEG"] >= 2
    masks = [s["mask"] for _, _, s in _series(manifest) if s["mask"]]
    assert any(m["references_missing_series"] for m in masks)
    names = {name for m in masks for name in m["names"]}
    assert {"GTV", "gtv_1", "Tumor", "Lesion 1", "Liver"} <= names


def test_series_and_masks_convert(tree, tmp_path):
    """Each manifest series reads as one volume; each mask has voxels for every name."""
    root, manifest, headers = tree
    for number, (_, _, series) in enumerate(_series(manifest)):
        alone = tmp_path / str(number)
        alone.mkdir()
        for path in _files_of(headers, series["series_uid"], root / series["folder"]):
            shutil.copy(path, alone / path.name)
        image, _ = read_series(alone)
        assert image.GetSize()[2] == series["n_slices"]
        if series["mask"] is not None:
            mask, _ = rasterize_dicom_mask(
                root / series["mask"]["file"], image, series["mask"]["names"]
            )
            labels = sitk.GetArrayFromImage(mask)
            for value in range(1, len(series["mask"]["names"]) + 1):
                assert (labels == value).sum() > 0, (series["series"], value)


def test_every_kind_of_skipped_object(tree):
    root, manifest, headers = tree
    assert {item["what"] for item in manifest["skipped"]} == SKIP_KINDS
    for item in manifest["skipped"]:
        assert (root / item["path"]).is_file()
    taken = {s["series_uid"] for _, _, s in _series(manifest)}
    for what in ("localizer", "dose_report", "secondary_capture", "too_few_slices", "ambiguous"):
        for item in _skipped(manifest, what):
            assert item["series_uid"] not in taken
            assert headers[root / item["path"]].SeriesInstanceUID == item["series_uid"]
    for item in _skipped(manifest, "duplicate"):
        assert item["series_uid"] in taken
    for item in _skipped(manifest, "not_dicom"):
        assert item["series_uid"] is None
        with pytest.raises(InvalidDicomError):
            pydicom.dcmread(root / item["path"])


def test_skipped_objects_carry_their_sop_classes(tree):
    root, manifest, headers = tree
    for item in _skipped(manifest, "dose_report"):
        ds = headers[root / item["path"]]
        assert (ds.SOPClassUID, ds.Modality) == (DOSE_REPORT_SOP_CLASS, "SR")
        assert ds.ConceptNameCodeSequence[0].CodeValue == "113701"
    for item in _skipped(manifest, "secondary_capture"):
        ds = headers[root / item["path"]]
        assert (ds.SOPClassUID, ds.Modality) == (SECONDARY_CAPTURE_SOP_CLASS, "OT")
    for item in _skipped(manifest, "localizer"):
        files = _files_of(headers, item["series_uid"])
        assert 1 <= len(files) <= 3
        assert all(
            list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "LOCALIZER"] for ds in files.values()
        )
    for item in _skipped(manifest, "too_few_slices"):
        files = _files_of(headers, item["series_uid"])
        assert len(files) < 3
        assert all(ds.Modality == "CT" and "LOCALIZER" not in ds.ImageType for ds in files.values())


def test_duplicate_has_identical_instances(tree):
    root, manifest, headers = tree
    folders = {s["series_uid"]: root / s["folder"] for _, _, s in _series(manifest)}
    for item in _skipped(manifest, "duplicate"):
        copy = (root / item["path"]).parent
        original = folders[item["series_uid"]]
        assert copy != original
        in_copy = _files_of(headers, item["series_uid"], copy)
        in_original = _files_of(headers, item["series_uid"], original)
        assert {ds.SOPInstanceUID for ds in in_copy.values()} == {
            ds.SOPInstanceUID for ds in in_original.values()
        }
        by_sop = {ds.SOPInstanceUID: path for path, ds in in_original.items()}
        for path, ds in in_copy.items():
            assert path.read_bytes() == by_sop[ds.SOPInstanceUID].read_bytes()


def test_ambiguous_slot_is_two_t2_series_of_one_study(tree):
    root, manifest, headers = tree
    items = _skipped(manifest, "ambiguous")
    assert len(items) >= 2
    by_study = defaultdict(set)
    for item in items:
        ds = headers[root / item["path"]]
        assert ds.Modality == "MR"
        assert ds.SequenceName.startswith("*tse")  # T2 turbo spin echo
        by_study[(ds.PatientID, ds.StudyInstanceUID)].add(item["series_uid"])
    assert any(len(uids) >= 2 for uids in by_study.values())


def test_layout_is_messy(tree):
    root, manifest, headers = tree
    paths = list(headers)
    assert any(p.suffix == ".dcm" for p in paths)
    assert any(p.suffix == "" for p in paths)
    assert all(len(p.relative_to(root).parts) >= 4 for p in paths)
    assert all(re.fullmatch(r"[0-9A-F]{8}(\.dcm)?", p.name) for p in paths)
    image_series = defaultdict(set)
    for path, ds in headers.items():
        if "ImagePositionPatient" in ds:
            image_series[path.parent].add(ds.SeriesInstanceUID)
    assert max(len(uids) for uids in image_series.values()) >= 2
    # file names do not follow the instance numbers
    for _, _, series in _series(manifest):
        files = _files_of(headers, series["series_uid"], root / series["folder"])
        by_name = [ds.InstanceNumber for _, ds in sorted(files.items())]
        assert by_name != sorted(by_name)


def test_fake_phi_is_in_the_headers(tree):
    """Every DICOM file names its patient; every fake value listed is somewhere in the headers."""
    _, manifest, headers = tree
    patients = manifest["patients"]
    seen = defaultdict(set)
    for ds in headers.values():
        patient = patients[ds.PatientID]
        assert str(ds.PatientName) == patient["name"]
        assert ds.PatientBirthDate == patient["birth_date"]
        if "InstitutionName" in ds:
            assert ds.InstitutionName == patient["institution"]
        for element in ds.iterall():
            if isinstance(element.value, str | pydicom.valuerep.PersonName):
                seen[ds.PatientID].add(str(element.value))
    for pid, patient in patients.items():
        assert set(patient["phi"]) <= seen[pid], pid


def test_same_seed_same_bytes(tree, tmp_path):
    root, manifest, _ = tree
    again = write_dicom_tree(tmp_path / "again", seed=0)
    assert again == manifest
    first = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    second = sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*"))
    second = [p for p in second if (tmp_path / "again" / p).is_file()]
    assert first == second
    for rel in first:
        assert (root / rel).read_bytes() == (tmp_path / "again" / rel).read_bytes(), rel


def test_other_seed_other_identities(tree, tmp_path):
    _, reference, _ = tree
    manifest = write_dicom_tree(tmp_path / "other", seed=1)
    assert set(manifest["patients"]).isdisjoint(reference["patients"])
    counts = [len(p["studies"]) for p in manifest["patients"].values()]
    assert counts == [len(p["studies"]) for p in reference["patients"].values()]
    assert np.sum(counts) >= 8


def test_unknown_mr_sequence_is_refused(tmp_path):
    image = sitk.Image([4, 4, 2], sitk.sitkFloat32)
    with pytest.raises(ValueError, match="unknown MR sequence 'PD'"):
        write_mr_series(
            image, tmp_path, phi=FakePHI(), seed=0, sequence="PD", series_description="pd_tse"
        )
