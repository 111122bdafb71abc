"""Checks on the files a cohort points to: existence, NIfTI headers, masks, RTSTRUCT, DICOM, slides.

Images are checked from their headers only (SimpleITK ``ReadImageInformation``, pydicom without
pixel data, ``openslide.OpenSlide`` which reads the TIFF directory); only masks are read in full,
because their values must be checked. Every function returns a list of
:class:`~oncoflow.validate.report.Problem` and never raises on bad data. ``label`` arguments are
the paths as written in ``images.csv``; they name the file in the problems.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oncoflow.validate.report import WARNING, Problem

log = logging.getLogger(__name__)

VOLUME_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")
"""File endings read as one volume by SimpleITK (not DICOM series, not slides)."""

GEOMETRY_TOL: float = 1e-3
"""Tolerance on spacing (mm), origin (mm) and direction cosines when comparing image and mask."""


@dataclass(frozen=True)
class Geometry:
    """Header geometry of a volume, in ITK (LPS, x-y-z) order."""

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    pixel_type: str
    components: int


def is_volume_file(path: Path | str) -> bool:
    """Return True when ``path`` ends like a single-file volume (NIfTI, MetaImage, NRRD)."""
    name = str(path).lower()
    return name.endswith(VOLUME_SUFFIXES)


@contextlib.contextmanager
def quiet_itk() -> Iterator[None]:
    """Silence ITK's own warning printer (it writes to stderr, bypassing logging) in a block."""
    import SimpleITK as sitk

    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)


def _first_line(exc: BaseException) -> str:
    """Shorten an exception text to its most telling line (SimpleITK's ``sitk::ERROR:`` line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "ERROR:" in line:
            text = line.split("ERROR:", 1)[1].strip()
            return text.split(' for "', 1)[0][:200]
    for line in lines:
        if not line.startswith("Exception thrown in SimpleITK"):
            return line[:200]
    return type(exc).__name__


def check_path(
    path: Path, *, label: str, patient_id: str | None, what: str = "file", folder_ok: bool = False
) -> list[Problem]:
    """Check that a file (or a DICOM folder) exists and can be read.

    Args:
        path: The resolved path.
        label: The path as written in the table.
        patient_id: Patient the row belongs to.
        what: Word for the file in messages (``"image"``, ``"mask"``, ``"slide"``).
        folder_ok: True when a folder is acceptable (a DICOM series).

    Returns:
        Problems with ``check="paths"``; empty when the path is usable.
    """
    message = None
    if not path.exists():
        message = f"{what} does not exist (looked for {path})"
    elif path.is_dir() and not folder_ok:
        message = f"{what} is a folder, expected a file"
    elif path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):
            message = f"{what} folder is not readable (permission denied)"
        elif not any(p.is_file() for p in path.iterdir()):
            message = f"{what} folder is empty (no DICOM files)"
    elif not os.access(path, os.R_OK):
        message = f"{what} is not readable (permission denied)"
    elif path.stat().st_size == 0:
        message = f"{what} is an empty file (0 bytes)"
    if message is None:
        return []
    return [Problem(patient_id, label, "paths", message)]


def read_geometry(path: Path) -> Geometry:
    """Read the geometry of a volume from its header only.

    Args:
        path: NIfTI (or other single-file) volume.

    Returns:
        The :class:`Geometry`.

    Raises:
        RuntimeError: When SimpleITK cannot read the header.
    """
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    with quiet_itk():
        reader.ReadImageInformation()
    return Geometry(
        size=tuple(int(s) for s in reader.GetSize()),
        spacing=tuple(float(s) for s in reader.GetSpacing()),
        origin=tuple(float(s) for s in reader.GetOrigin()),
        direction=tuple(float(s) for s in reader.GetDirection()),
        pixel_type=sitk.GetPixelIDValueAsString(reader.GetPixelID()),
        components=int(reader.GetNumberOfComponents()),
    )


def check_volume_header(
    path: Path, *, label: str, patient_id: str | None, what: str = "image"
) -> tuple[Geometry | None, list[Problem]]:
    """Read a volume header, turning a failure into a problem.

    Returns:
        ``(geometry, [])`` when the header reads, else ``(None, [problem])`` with
        ``check="readable"``.
    """
    try:
        return read_geometry(path), []
    except RuntimeError as exc:
        log.debug("cannot read %s: %s", path, exc)
        kind = "NIfTI " if str(path).lower().endswith((".nii", ".nii.gz")) else ""
        message = (
            f"cannot read {what} header: corrupt or not a {kind}image file ({_first_line(exc)})"
        )
        return None, [Problem(patient_id, label, "readable", message)]


def _fmt_vec(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def compare_geometry(image: Geometry, mask: Geometry, *, tol: float = GEOMETRY_TOL) -> list[str]:
    """List the differences between an image and its mask grid.

    Size must be equal; spacing (mm), origin (mm) and direction cosines must agree within ``tol``.

    Returns:
        One phrase per differing attribute, e.g. ``"spacing (0.8, 0.8, 0.8) vs (1, 1, 1)"``
        (mask first, then image); empty when the grids match.
    """
    diffs: list[str] = []
    if len(image.size) != len(mask.size):
        return [f"dimension {len(mask.size)}D vs {len(image.size)}D"]
    if image.size != mask.size:
        diffs.append(f"size {_fmt_vec(mask.size)} vs {_fmt_vec(image.size)}")
    for name in ("spacing", "origin", "direction"):
        a = np.asarray(getattr(mask, name), dtype=float)
        b = np.asarray(getattr(image, name), dtype=float)
        if a.shape != b.shape or not np.allclose(a, b, rtol=0.0, atol=tol):
            diffs.append(f"{name} {_fmt_vec(a)} vs {_fmt_vec(b)}")
    return diffs


def check_geometry(
    image: Geometry, mask: Geometry, *, label: str, mask_label: str, patient_id: str | None
) -> list[Problem]:
    """Check that a mask lies on its image's voxel grid.

    Returns:
        At most one problem (``check="geometry"``) listing every differing attribute.
    """
    diffs = compare_geometry(image, mask)
    if not diffs:
        return []
    message = f"mask geometry differs from image ({'; '.join(diffs)}; mask {mask_label})"
    return [Problem(patient_id, label, "geometry", message)]


def check_mask_values(
    path: Path,
    *,
    label: str,
    patient_id: str | None,
    labels: Sequence[int] | None = None,
) -> list[Problem]:
    """Check a label-map mask: integer-valued, known labels, not empty.

    The mask is read in full (masks are small label maps). Values must be integers (a float mask
    with values like 1.0003 is an interpolation artefact), non-negative, and within
    ``{0} ∪ labels`` when ``labels`` is given; at least one voxel must be non-zero.

    Args:
        path: The mask file.
        label: Mask path as written in the table.
        patient_id: Patient the row belongs to.
        labels: Declared foreground labels; ``None`` accepts any positive integer.

    Returns:
        Problems with ``check="masks"`` (or ``"readable"`` when the voxels cannot be read).
    """
    import SimpleITK as sitk

    try:
        with quiet_itk():
            image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        message = f"cannot read mask: corrupt or not an image file ({_first_line(exc)})"
        return [Problem(patient_id, label, "readable", message)]
    array = sitk.GetArrayViewFromImage(image)
    found: list[Problem] = []
    if image.GetNumberOfComponentsPerPixel() != 1:
        message = (
            f"mask has {image.GetNumberOfComponentsPerPixel()} components per voxel, expected 1"
        )
        return [Problem(patient_id, label, "masks", message)]
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        if not finite.all():
            message = "mask has non-finite values (NaN or inf)"
            found.append(Problem(patient_id, label, "masks", message))
        frac = np.abs(array[finite] - np.round(array[finite]))
        if frac.size and float(frac.max()) > 0:
            worst = float(array[finite].ravel()[int(np.argmax(frac))])
            n_bad = int(np.count_nonzero(frac))
            message = (
                f"mask has non-integer values (e.g. {worst:.6g}, {n_bad} voxels): "
                "label maps must hold integers (interpolation artefact?)"
            )
            found.append(Problem(patient_id, label, "masks", message))
        values = np.unique(np.round(array[finite])).astype(np.int64)
    else:
        values = np.unique(array).astype(np.int64)
    negative = [int(v) for v in values if v < 0]
    if negative:
        message = f"mask has negative label(s) {', '.join(map(str, negative))}"
        found.append(Problem(patient_id, label, "masks", message))
    if labels is not None:
        allowed = {0, *(int(v) for v in labels)}
        extra = [int(v) for v in values if int(v) not in allowed and v >= 0]
        if extra:
            declared = ", ".join(map(str, sorted(allowed - {0}))) or "none"
            message = (
                f"mask has undeclared label(s) {', '.join(map(str, extra))} "
                f"(declared labels: {declared})"
            )
            found.append(Problem(patient_id, label, "masks", message))
    if not np.any(array):
        found.append(Problem(patient_id, label, "masks", "mask is empty (no non-zero voxel)"))
    return found


def rtstruct_roi_names(ds: object) -> dict[int, str]:
    """Return ``{ROINumber: ROIName}`` from an RTSTRUCT dataset."""
    names: dict[int, str] = {}
    for item in getattr(ds, "StructureSetROISequence", []) or []:
        number = getattr(item, "ROINumber", None)
        if number is not None:
            names[int(number)] = str(getattr(item, "ROIName", "")).strip()
    return names


def check_dicom_mask(
    path: Path, *, roi: str | None, label: str, patient_id: str | None
) -> list[Problem]:
    """Check a DICOM mask: an RTSTRUCT or a SEG holding every ROI / segment ``roi`` names.

    Reads headers only. An RTSTRUCT needs ``roi`` and each named ROI must have contours; a SEG
    may be given none (every segment is rasterised), else each named segment (label or number)
    must exist (:func:`oncoflow.convert.seg.segment_number` matches them).

    Args:
        path: The RTSTRUCT or SEG file.
        roi: ``mask_roi`` of the row: one name or several joined by ``+``.
        label: Mask path as written in the table.
        patient_id: Patient the row belongs to.

    Returns:
        Problems with ``check="rtstruct"`` (an RTSTRUCT, or a file that is neither) or
        ``check="seg"``.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    def problem(message: str, check: str = "rtstruct") -> list[Problem]:
        return [Problem(patient_id, label, check, message)]

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        return problem(
            "mask is neither a NIfTI file (.nii/.nii.gz) nor a readable DICOM RTSTRUCT or SEG "
            f"({_first_line(exc)})"
        )
    modality = str(getattr(ds, "Modality", ""))
    if modality == "SEG":
        return _seg_problems(path, ds, roi, lambda message: problem(message, "seg"))
    if modality != "RTSTRUCT":
        return problem(
            f"mask is a DICOM file of modality {modality or 'unknown'}, not RTSTRUCT or SEG"
        )
    if roi is None or not str(roi).strip():
        return problem("mask_roi is empty: an RTSTRUCT mask needs the ROI name(s) to rasterise")
    names = rtstruct_roi_names(ds)
    with_contours = {
        int(item.ReferencedROINumber)
        for item in getattr(ds, "ROIContourSequence", []) or []
        if getattr(item, "ReferencedROINumber", None) is not None
        and len(getattr(item, "ContourSequence", []) or []) > 0
    }
    found: list[Problem] = []
    available = ", ".join(sorted(names.values())) or "none"
    for wanted in str(roi).split("+"):
        wanted = wanted.strip()
        numbers = [n for n, name in names.items() if name == wanted]
        if not numbers:
            found += problem(f"RTSTRUCT has no ROI named '{wanted}' (ROIs: {available})")
        elif not any(n in with_contours for n in numbers):
            found += problem(f"RTSTRUCT ROI '{wanted}' has no contours (empty mask)")
    return found


def _seg_problems(
    path: Path, ds: object, roi: str | None, problem: Callable[[str], list[Problem]]
) -> list[Problem]:
    """The named segments a SEG lacks (none named: a SEG without any segment)."""
    from oncoflow.convert.seg import segment_labels, segment_number
    from oncoflow.errors import ConversionError

    available = segment_labels(ds)
    if not available:
        return problem("the SEG has no segment")
    found: list[Problem] = []
    for wanted in (roi or "").split("+"):
        if not wanted.strip():
            continue
        try:
            segment_number(path, wanted, available)
        except ConversionError as exc:
            found += problem(str(exc).split(": ", 1)[-1])
    return found


def check_dicom_series(
    folder: Path,
    *,
    modality: str,
    label: str,
    patient_id: str | None,
    tilt: str = "resample",
    uneven_spacing: str = "resample",
) -> list[Problem]:
    """Check a DICOM series folder with :func:`oncoflow.convert.dicom.inspect_series`.

    Reads headers only. PET series are also checked for the tags SUVbw needs (``suv=True``);
    gantry tilt and uneven slice spacing are problems under the ``"refuse"`` policies.

    Returns:
        One problem (``check="dicom"``) per string ``inspect_series`` returns.
    """
    try:
        from oncoflow.convert.dicom import inspect_series
    except ImportError as exc:  # the convert stage is not installed
        message = f"DICOM series not checked: oncoflow.convert.dicom unavailable ({exc})"
        return [Problem(patient_id, label, "dicom", message, severity=WARNING)]
    issues = inspect_series(
        folder, suv=(modality == "PET"), tilt=tilt, uneven_spacing=uneven_spacing
    )
    found = []
    where = str(folder)
    for text in issues:
        message = str(text)
        message = message.removeprefix(f"{where}: ")
        found.append(Problem(patient_id, label, "dicom", message.replace(where, label)))
    return found


def check_slide(path: Path, *, label: str, patient_id: str | None) -> list[Problem]:
    """Check that a whole-slide image opens with openslide and has µm/px metadata.

    A slide that does not open is an error; a slide without ``openslide.mpp-x`` is a warning
    (pathomics then needs ``--mpp``).

    Returns:
        Problems with ``check="slides"``.
    """
    import openslide

    try:
        slide = openslide.OpenSlide(str(path))
    except (openslide.OpenSlideError, OSError, ValueError) as exc:
        message = f"cannot open slide with openslide ({_first_line(exc)})"
        return [Problem(patient_id, label, "slides", message)]
    try:
        props = slide.properties
        mpp = props.get(openslide.PROPERTY_NAME_MPP_X)
        if mpp is None or not _positive(mpp):
            message = "slide has no µm/px metadata (openslide.mpp-x); pathomics needs --mpp for it"
            return [Problem(patient_id, label, "slides", message, severity=WARNING)]
    finally:
        slide.close()
    return []


def _positive(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False
