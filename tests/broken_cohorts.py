"""Build a small valid cohort and broken variants of it (one defect each) for validation tests.

The valid cohort has four patients on two sites:

======  ====  ==============  =================================================================
patient site  split           images
======  ====  ==============  =================================================================
P001    A     train           NIfTI CT 32³ + NIfTI mask (labels 1, 2); pyramidal TIFF slide (HE)
P002    A     train           DICOM CT series (32x32x16) + RTSTRUCT (ROIs Pancreas, GTV)
P003    B     internal_test   NIfTI CT + mask; DICOM PET series (SUV tags complete)
P004    B     external_test   NIfTI CT + mask
======  ====  ==============  =================================================================

It validates cleanly with :data:`VALID_OPTIONS` (``--clinical age,sex --targets os_time,os_event
--mask-labels 1,2``). :data:`BROKEN` maps a variant name to a :class:`Broken` describing its single
defect and what a validator must say about it (patient, file, a specific phrase).

Usage::

    valid = build_valid_cohort(tmp_path / "valid")
    cohort, broken = build_broken_cohort("empty_mask", tmp_path / "empty_mask", valid=valid)
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
import tifffile

from oncoflow.demo.dicomwrite import FakePHI, write_ct_series, write_pet_series, write_rtstruct

VALID_OPTIONS: dict[str, object] = {
    "clinical": ("age", "sex"),
    "targets": ("os_time", "os_event"),
    "mask_labels": (1, 2),
}
"""Keyword options of ``validate_cohort`` under which the valid cohort has no problem."""

PATIENTS: tuple[str, ...] = ("P001", "P002", "P003", "P004")
NIFTI_PATIENTS: tuple[str, ...] = ("P001", "P003", "P004")
CT_SIZE = 32
DICOM_SLICES = 16


def cli_args(options: Mapping[str, object]) -> list[str]:
    """Turn ``validate_cohort`` keyword options into ``scripts/validate_cohort.py`` arguments."""
    args: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, tuple | list):
            value = ",".join(map(str, value))
        args += [flag, str(value)]
    return args


VALID_ARGS: list[str] = cli_args(VALID_OPTIONS)


# ------------------------------------------------------------------------------------------------
# images


def _rng(seed: int, patient: str) -> np.random.Generator:
    """Generator derived per patient, so one patient's data never depend on another's."""
    return np.random.default_rng([seed, int(patient[1:])])


def _ct_array(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """Soft-tissue noise (HU) with a denser sphere in the middle; array order z, y, x."""
    z, y, x = np.indices(shape)
    centre = np.array(shape) / 2.0
    r = np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2)
    hu = rng.normal(40.0, 10.0, size=shape)
    hu[r < shape[2] / 4] += 60.0
    return hu.astype(np.float32)


def _label_array(shape: tuple[int, int, int]) -> np.ndarray:
    """Organ (label 1) around a lesion (label 2): two concentric spheres."""
    z, y, x = np.indices(shape)
    centre = np.array(shape) / 2.0
    r = np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[r < shape[2] / 4] = 1
    labels[r < shape[2] / 8] = 2
    return labels


def _image(array: np.ndarray, *, spacing: float = 1.0, origin: float = -16.0) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((spacing,) * 3)
    image.SetOrigin((origin,) * 3)
    return image


def write_nifti_ct(root: Path, patient: str, *, seed: int = 0) -> None:
    """Write ``images/<patient>/ct.nii.gz`` and ``mask.nii.gz`` (32³, 1 mm)."""
    folder = root / "images" / patient
    folder.mkdir(parents=True, exist_ok=True)
    shape = (CT_SIZE,) * 3
    sitk.WriteImage(_image(_ct_array(_rng(seed, patient), shape)), str(folder / "ct.nii.gz"))
    write_mask(root, patient, _label_array(shape))


def write_mask(root: Path, patient: str, array: np.ndarray, *, spacing: float = 1.0) -> None:
    """(Re)write ``images/<patient>/mask.nii.gz`` from an array (z, y, x)."""
    folder = root / "images" / patient
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(_image(array, spacing=spacing), str(folder / "mask.nii.gz"))


def write_dicom_ct(
    root: Path,
    patient: str = "P002",
    *,
    seed: int = 0,
    gantry_tilt_deg: float = 0.0,
    slice_positions_mm: list[float] | None = None,
) -> None:
    """Write ``images/<patient>/ct_dicom/`` and ``images/<patient>/rtstruct.dcm``."""
    folder = root / "images" / patient
    series = folder / "ct_dicom"
    if series.exists():
        shutil.rmtree(series)
    shape = (DICOM_SLICES, CT_SIZE, CT_SIZE)
    image = _image(_ct_array(_rng(seed, patient), shape))
    phi = FakePHI()
    write_ct_series(
        image,
        series,
        phi=phi,
        seed=seed,
        gantry_tilt_deg=gantry_tilt_deg,
        slice_positions_mm=slice_positions_mm,
    )
    labels = sitk.GetImageFromArray(_label_array(shape))
    labels.CopyInformation(image)
    write_rtstruct(
        labels,
        series,
        folder / "rtstruct.dcm",
        roi_names={1: "Pancreas", 2: "GTV"},
        phi=phi,
        seed=seed,
    )


def write_dicom_pet(
    root: Path, patient: str = "P003", *, seed: int = 0, omit_tags: tuple[str, ...] = ()
) -> None:
    """Write ``images/<patient>/pet_dicom/`` (SUVbw 32x32x16, 2 mm)."""
    series = root / "images" / patient / "pet_dicom"
    if series.exists():
        shutil.rmtree(series)
    shape = (DICOM_SLICES, CT_SIZE, CT_SIZE)
    suv = np.abs(_rng(seed + 1, patient).normal(1.0, 0.2, size=shape)).astype(np.float32)
    suv[_label_array(shape) == 2] += 6.0
    write_pet_series(
        _image(suv, spacing=2.0, origin=-32.0),
        series,
        phi=FakePHI(),
        seed=seed,
        omit_tags=omit_tags,
    )


def write_slide(path: Path, *, seed: int = 0, mpp: float | None = 0.5) -> None:
    """Write a tiny tiled pyramidal RGB TIFF (512² + 256², 128² tiles) that openslide opens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = np.full((512, 512, 3), 235, dtype=np.uint8)
    base[128:384, 128:384] = rng.integers(120, 200, size=(256, 256, 3), dtype=np.uint8)
    opts: dict[str, object] = {"tile": (128, 128), "photometric": "rgb", "compression": "zlib"}
    with tifffile.TiffWriter(path) as tif:
        for level, image in enumerate((base, base[::2, ::2])):
            extra: dict[str, object] = {"subfiletype": 1} if level else {}
            if mpp is not None:
                per_cm = 1e4 / (mpp * 2**level)
                extra |= {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}
            tif.write(image, **opts, **extra)


# ------------------------------------------------------------------------------------------------
# tables


def _write_csv(root: Path, name: str, rows: list[dict[str, object]]) -> None:
    pd.DataFrame(rows).to_csv(root / f"{name}.csv", index=False)


def read_csv(root: Path, name: str) -> pd.DataFrame:
    """Read a cohort table as plain text (for editing in fixtures)."""
    return pd.read_csv(root / f"{name}.csv", dtype=str, keep_default_na=False)


def write_csv(root: Path, name: str, table: pd.DataFrame) -> None:
    """Write a table edited with :func:`read_csv` back."""
    table.to_csv(root / f"{name}.csv", index=False)


def edit_cell(
    root: Path, name: str, patient: str, column: str, value: object, nth: int = 0
) -> None:
    """Set ``column`` of the ``nth`` row of ``patient`` in table ``name``."""
    table = read_csv(root, name)
    index = table.index[table["patient_id"] == patient][nth]
    table.loc[index, column] = str(value)
    write_csv(root, name, table)


def _tables(root: Path) -> None:
    images = []
    sites = {"P001": "A", "P002": "A", "P003": "B", "P004": "B"}
    for pid in NIFTI_PATIENTS:
        images.append(
            {
                "patient_id": pid,
                "timepoint": 0,
                "modality": "CT",
                "series": "venous",
                "path": f"images/{pid}/ct.nii.gz",
                "mask_path": f"images/{pid}/mask.nii.gz",
                "mask_roi": "",
                "site": sites[pid],
            }
        )
    images.insert(
        1,
        {
            "patient_id": "P002",
            "timepoint": 0,
            "modality": "CT",
            "series": "venous",
            "path": "images/P002/ct_dicom",
            "mask_path": "images/P002/rtstruct.dcm",
            "mask_roi": "GTV",
            "site": "A",
        },
    )
    images.append(
        {
            "patient_id": "P003",
            "timepoint": 0,
            "modality": "PET",
            "series": "-",
            "path": "images/P003/pet_dicom",
            "mask_path": "",
            "mask_roi": "",
            "site": "B",
        }
    )
    images.append(
        {
            "patient_id": "P001",
            "timepoint": 0,
            "modality": "WSI",
            "series": "HE",
            "path": "slides/P001.tif",
            "mask_path": "",
            "mask_roi": "",
            "site": "A",
        }
    )
    _write_csv(root, "images", images)
    _write_csv(
        root,
        "clinical",
        [
            {"patient_id": "P001", "age": 61, "sex": "F", "smoking": "never"},
            {"patient_id": "P002", "age": 70.5, "sex": "M", "smoking": "former"},
            {"patient_id": "P003", "age": 55, "sex": "M", "smoking": ""},
            {"patient_id": "P004", "age": 48, "sex": "F", "smoking": "current"},
        ],
    )
    _write_csv(
        root,
        "outcomes",
        [
            {"patient_id": "P001", "os_time": 420.0, "os_event": 1},
            {"patient_id": "P002", "os_time": 1200.0, "os_event": 0},
            {"patient_id": "P003", "os_time": 87.5, "os_event": 1},
            {"patient_id": "P004", "os_time": 640.0, "os_event": 0},
        ],
    )
    _write_csv(
        root,
        "splits",
        [
            {"patient_id": "P001", "split": "train"},
            {"patient_id": "P002", "split": "train"},
            {"patient_id": "P003", "split": "internal_test"},
            {"patient_id": "P004", "split": "external_test"},
        ],
    )


def build_valid_cohort(root: Path, *, seed: int = 0) -> Path:
    """Write the valid cohort into ``root`` (created) and return ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for pid in NIFTI_PATIENTS:
        write_nifti_ct(root, pid, seed=seed)
    write_dicom_ct(root, "P002", seed=seed)
    write_dicom_pet(root, "P003", seed=seed)
    write_slide(root / "slides" / "P001.tif", seed=seed)
    _tables(root)
    return root


# ------------------------------------------------------------------------------------------------
# broken variants


@dataclass(frozen=True)
class Broken:
    """One defect planted in a copy of the valid cohort.

    Attributes:
        defect: What is wrong, in words.
        mutate: Edits the copied cohort folder to plant the defect.
        patient: Patient ID a validator must name (``None`` for table-level defects).
        file: File a validator must name (path as in the tables, or ``"<table>.csv"``).
        phrase: Text specific to the defect that the problem line must contain.
        options: Extra ``validate_cohort`` keyword options (besides :data:`VALID_OPTIONS`).
    """

    defect: str
    mutate: Callable[[Path], None]
    patient: str | None
    file: str | None
    phrase: str
    options: Mapping[str, object] = field(default_factory=dict)

    def all_options(self) -> dict[str, object]:
        """:data:`VALID_OPTIONS` updated with this variant's options."""
        return {**VALID_OPTIONS, **self.options}


def _bad_modality(root: Path) -> None:
    edit_cell(root, "images", "P001", "modality", "XR")


def _unknown_column(root: Path) -> None:
    table = read_csv(root, "clinical")
    table["bmi"] = ["22.5", "31.0", "27.1", "19.8"]
    write_csv(root, "clinical", table)


def _duplicate_patient(root: Path) -> None:
    table = read_csv(root, "clinical")
    table = pd.concat([table, table[table["patient_id"] == "P002"]], ignore_index=True)
    write_csv(root, "clinical", table)


def _missing_image(root: Path) -> None:
    (root / "images" / "P004" / "ct.nii.gz").unlink()


def _corrupt_nifti(root: Path) -> None:
    (root / "images" / "P003" / "ct.nii.gz").write_bytes(b"this is not a NIfTI file\n" * 40)


def _geometry_mismatch(root: Path) -> None:
    write_mask(root, "P004", _label_array((CT_SIZE,) * 3), spacing=0.8)


def _mask_float(root: Path) -> None:
    labels = _label_array((CT_SIZE,) * 3).astype(np.float32)
    labels[labels == 1] = 1.0003
    write_mask(root, "P001", labels)


def _mask_undeclared_label(root: Path) -> None:
    labels = _label_array((CT_SIZE,) * 3)
    labels[:2, :2, :2] = 3
    write_mask(root, "P003", labels)


def _empty_mask(root: Path) -> None:
    write_mask(root, "P004", np.zeros((CT_SIZE,) * 3, dtype=np.uint8))


def _two_splits(root: Path) -> None:
    table = read_csv(root, "splits")
    extra = pd.DataFrame([{"patient_id": "P001", "split": "internal_test"}])
    write_csv(root, "splits", pd.concat([table, extra], ignore_index=True))


def _negative_os_time(root: Path) -> None:
    edit_cell(root, "outcomes", "P002", "os_time", "-30")


def _event_value_2(root: Path) -> None:
    edit_cell(root, "outcomes", "P003", "os_event", "2")


def _nan_clinical(root: Path) -> None:
    edit_cell(root, "clinical", "P004", "age", "")


def _missing_target(root: Path) -> None:
    edit_cell(root, "outcomes", "P001", "os_event", "")


def _unopenable_slide(root: Path) -> None:
    (root / "slides" / "P001.tif").write_bytes(b"II*\x00" + b"\x00" * 60)


def _tilted_ct(root: Path) -> None:
    write_dicom_ct(root, "P002", gantry_tilt_deg=15.0)


def _uneven_spacing(root: Path) -> None:
    positions = [float(z) for z in np.cumsum([0.0] + [1.0] * 7 + [2.5] + [1.0] * 7) - 16.0]
    write_dicom_ct(root, "P002", slice_positions_mm=positions)


def _missing_suv_tag(root: Path) -> None:
    write_dicom_pet(root, "P003", omit_tags=("RadionuclideTotalDose",))


def _rtstruct_roi_absent(root: Path) -> None:
    edit_cell(root, "images", "P002", "mask_roi", "Liver")


def _missing_from_clinical(root: Path) -> None:
    table = read_csv(root, "clinical")
    write_csv(root, "clinical", table[table["patient_id"] != "P003"])


def _missing_from_splits(root: Path) -> None:
    table = read_csv(root, "splits")
    write_csv(root, "splits", table[table["patient_id"] != "P004"])


def _missing_table(root: Path) -> None:
    (root / "outcomes.csv").unlink()


BROKEN: dict[str, Broken] = {
    "bad_modality": Broken(
        "images.csv modality 'XR' is not in the schema's enum",
        _bad_modality,
        "P001",
        "images.csv",
        "column 'modality': value 'XR' is not one of CT, PET, MR, WSI",
    ),
    "unknown_column": Broken(
        "clinical.csv has a column the schema does not know",
        _unknown_column,
        None,
        "clinical.csv",
        "unknown column 'bmi'",
    ),
    "duplicate_patient": Broken(
        "P002 has two rows in clinical.csv",
        _duplicate_patient,
        "P002",
        "clinical.csv",
        "duplicate patient_id",
    ),
    "missing_image": Broken(
        "the CT file of P004 does not exist",
        _missing_image,
        "P004",
        "images/P004/ct.nii.gz",
        "image does not exist",
    ),
    "corrupt_nifti": Broken(
        "the CT file of P003 is not a NIfTI file",
        _corrupt_nifti,
        "P003",
        "images/P003/ct.nii.gz",
        "cannot read image header",
    ),
    "geometry_mismatch": Broken(
        "the mask of P004 has 0.8 mm spacing, the CT 1 mm",
        _geometry_mismatch,
        "P004",
        "images/P004/ct.nii.gz",
        "mask geometry differs from image (spacing (0.8, 0.8, 0.8) vs (1, 1, 1)",
    ),
    "mask_float": Broken(
        "the mask of P001 holds 1.0003 (float artefact)",
        _mask_float,
        "P001",
        "images/P001/mask.nii.gz",
        "mask has non-integer values (e.g. 1.0003",
    ),
    "mask_undeclared_label": Broken(
        "the mask of P003 holds label 3 (declared: 1, 2)",
        _mask_undeclared_label,
        "P003",
        "images/P003/mask.nii.gz",
        "mask has undeclared label(s) 3 (declared labels: 1, 2)",
    ),
    "empty_mask": Broken(
        "the mask of P004 is all zeros",
        _empty_mask,
        "P004",
        "images/P004/mask.nii.gz",
        "mask is empty",
    ),
    "two_splits": Broken(
        "P001 is in train and internal_test",
        _two_splits,
        "P001",
        "splits.csv",
        "patient is in more than one split (internal_test, train",
    ),
    "negative_os_time": Broken(
        "os_time of P002 is -30",
        _negative_os_time,
        "P002",
        "outcomes.csv",
        "column 'os_time': value -30.0 is below the minimum 0 (negative)",
    ),
    "event_value_2": Broken(
        "os_event of P003 is 2",
        _event_value_2,
        "P003",
        "outcomes.csv",
        "column 'os_event': value 2 is not one of 0, 1",
    ),
    "nan_clinical": Broken(
        "age of P004 is empty and age is a required clinical field",
        _nan_clinical,
        "P004",
        "clinical.csv",
        "required clinical field 'age' is missing",
    ),
    "missing_target": Broken(
        "os_event of P001 is empty and os_event is a declared target",
        _missing_target,
        "P001",
        "outcomes.csv",
        "declared target 'os_event' is missing",
    ),
    "unopenable_slide": Broken(
        "the slide of P001 is a broken TIFF",
        _unopenable_slide,
        "P001",
        "slides/P001.tif",
        "cannot open slide with openslide",
    ),
    "tilted_ct": Broken(
        "the DICOM CT of P002 has a 15° gantry tilt and the policy is refuse",
        _tilted_ct,
        "P002",
        "images/P002/ct_dicom",
        "tilt",
        {"tilt": "refuse"},
    ),
    "uneven_spacing": Broken(
        "the DICOM CT of P002 has one 2.5 mm gap among 1 mm slices and the policy is refuse",
        _uneven_spacing,
        "P002",
        "images/P002/ct_dicom",
        "spacing",
        {"uneven_spacing": "refuse"},
    ),
    "missing_suv_tag": Broken(
        "the DICOM PET of P003 has no RadionuclideTotalDose",
        _missing_suv_tag,
        "P003",
        "images/P003/pet_dicom",
        "RadionuclideTotalDose",
    ),
    "rtstruct_roi_absent": Broken(
        "mask_roi of P002 names an ROI the RTSTRUCT does not have",
        _rtstruct_roi_absent,
        "P002",
        "images/P002/rtstruct.dcm",
        "RTSTRUCT has no ROI named 'Liver' (ROIs: GTV, Pancreas)",
    ),
    "missing_from_clinical": Broken(
        "P003 has images but no clinical.csv row",
        _missing_from_clinical,
        "P003",
        "clinical.csv",
        "patient has images but no row in clinical.csv",
    ),
    "missing_from_splits": Broken(
        "P004 has images but no splits.csv row",
        _missing_from_splits,
        "P004",
        "splits.csv",
        "patient has images but no row in splits.csv",
    ),
    "missing_table": Broken(
        "outcomes.csv does not exist",
        _missing_table,
        None,
        "outcomes.csv",
        "required table outcomes.csv does not exist",
    ),
}
"""Broken variants by name; each plants exactly one defect in a copy of the valid cohort."""


def build_broken_cohort(
    name: str, root: Path, *, valid: Path | None = None, seed: int = 0
) -> tuple[Path, Broken]:
    """Write the broken variant ``name`` into ``root``.

    Args:
        name: Key of :data:`BROKEN`.
        root: Folder to write (must not exist yet).
        valid: An already built valid cohort to copy (faster); built afresh when ``None``.
        seed: Seed for a fresh build.

    Returns:
        ``(root, variant)``.
    """
    broken = BROKEN[name]
    root = Path(root)
    if valid is None:
        build_valid_cohort(root, seed=seed)
    else:
        shutil.copytree(valid, root)
    broken.mutate(root)
    return root, broken
