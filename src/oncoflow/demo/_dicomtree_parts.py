"""How :mod:`oncoflow.demo.dicomtree` writes its tree: tiny anatomy, meaningless names, series.

* :class:`Anatomy` - a body, an organ and a lesion (ellipsoids in patient coordinates), rendered as
  tissue classes on any grid (:func:`grid`, :func:`render`, :func:`label_map`);
* :class:`Tree`, :class:`Patient`, :class:`Study` - the folders being written and the manifest
  entries being filled;
* :func:`write_ct`, :func:`write_pet`, :func:`write_mr`, :func:`write_mask` - one series or mask of
  a study, written with :mod:`oncoflow.demo.dicomwrite` (files without ``.dcm`` at site B);
* :func:`reexport`, :func:`move`, :func:`dose_report` - the mess: new UIDs, mixed folders, objects
  to skip.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk

from oncoflow.demo.dicomwrite import (
    FakePHI,
    write_ct_series,
    write_dose_report,
    write_mr_series,
    write_pet_series,
    write_rtstruct,
    write_seg,
)
from oncoflow.demo.dicomwrite._dataset import _study_uids, _uid

VENOUS = "Iomeprol 350 (Imeron)"
"""ContrastBolusAgent of the venous CTs."""

# tissue classes of the label maps the images are drawn from
_AIR, _BODY, _ORGAN, _LESION = 0, 1, 2, 3
_CT_HU = {False: (-1000.0, 40.0, 62.0, 38.0), True: (-1000.0, 45.0, 115.0, 70.0)}
_PET_SUV = (0.0, 0.8, 2.3, 9.0)
_MR_SIGNAL = {
    "T1": (5.0, 600.0, 700.0, 420.0),
    "T1C": (5.0, 650.0, 900.0, 1150.0),
    "T2": (5.0, 500.0, 350.0, 950.0),
    "FLAIR": (5.0, 420.0, 300.0, 820.0),
    "DWI": (5.0, 150.0, 220.0, 700.0),
}
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0)


# --------------------------------------------------------------------------------------------------
# images


@dataclass(frozen=True)
class Anatomy:
    """A body cylinder, an organ ellipsoid and a lesion ellipsoid inside it (LPS, mm)."""

    body: tuple[float, float]
    organ_centre: tuple[float, float, float]
    organ_radii: tuple[float, float, float]
    lesion_centre: tuple[float, float, float]
    lesion_radii: tuple[float, float, float]

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Anatomy:
        """Draw an anatomy: the lesion (4.5 to 6 mm radius) well inside the organ."""
        organ = (float(rng.uniform(-3, 3)), float(rng.uniform(-3, 3)), float(rng.uniform(-3, 3)))
        offset = rng.uniform(-2.0, 2.0, size=3)
        radius = float(rng.uniform(4.5, 6.0))
        return cls(
            body=(float(rng.uniform(19, 22)), float(rng.uniform(15, 18))),
            organ_centre=organ,
            organ_radii=(12.0, 10.0, 14.0),
            lesion_centre=tuple(float(c + o) for c, o in zip(organ, offset, strict=True)),
            lesion_radii=(radius, radius, radius + 2.0),
        )

    def shrunk(self, factor: float) -> Anatomy:
        """The same anatomy at follow-up, the lesion's radii scaled by ``factor``."""
        return replace(self, lesion_radii=tuple(r * factor for r in self.lesion_radii))

    def classes(self, ref: sitk.Image) -> np.ndarray:
        """Tissue class (air, body, organ, lesion) of every voxel of ``ref``; ``(z, y, x)``."""
        nx, ny, nz = ref.GetSize()
        k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
        index = np.stack([i, j, k], axis=-1) * np.asarray(ref.GetSpacing())
        direction = np.asarray(ref.GetDirection()).reshape(3, 3)
        points = np.asarray(ref.GetOrigin()) + index @ direction.T

        def inside(centre: tuple[float, ...], radii: tuple[float, ...]) -> np.ndarray:
            return (((points - np.asarray(centre)) / np.asarray(radii)) ** 2).sum(axis=-1) < 1.0

        out = np.full((nz, ny, nx), _AIR, dtype=np.uint8)
        out[inside((0.0, 0.0, 0.0), (*self.body, 1e9))] = _BODY
        out[inside(self.organ_centre, self.organ_radii)] = _ORGAN
        out[inside(self.lesion_centre, self.lesion_radii)] = _LESION
        return out


def grid(
    n_slices: int, spacing: tuple[float, float, float], direction: tuple[float, ...] | None = None
) -> sitk.Image:
    """A 32 x 32 x ``n_slices`` reference image centred on the origin (axial by default)."""
    ref = sitk.Image([32, 32, n_slices], sitk.sitkFloat32)
    ref.SetSpacing(spacing)
    if direction is not None:
        ref.SetDirection(direction)
    d = np.asarray(ref.GetDirection()).reshape(3, 3)
    half = (np.asarray(ref.GetSize()) - 1) * np.asarray(spacing) / 2.0
    ref.SetOrigin(tuple(float(v) for v in -(d @ half)))
    return ref


def render(
    ref: sitk.Image, classes: np.ndarray, values: tuple[float, ...], noise: float, seed: list[int]
) -> sitk.Image:
    """An image on ``ref``: each tissue class's value plus Gaussian noise (deterministic)."""
    rng = np.random.default_rng(seed)
    array = np.asarray(values)[classes] + rng.normal(0.0, noise, size=classes.shape)
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.CopyInformation(ref)
    return image


def label_map(ref: sitk.Image, classes: np.ndarray, n_rois: int) -> sitk.Image:
    """The mask drawn on ``ref``: lesion = 1 and, with two ROIs, the rest of the organ = 2."""
    labels = (classes == _LESION).astype(np.uint8)
    if n_rois == 2:
        labels[classes == _ORGAN] = 2
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(ref)
    return image


# --------------------------------------------------------------------------------------------------
# the tree


@dataclass
class Tree:
    """The tree being written: meaningless names and the list of objects to skip."""

    root: Path
    rng: np.random.Generator
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def folder(self, parent: Path, *, numbered: bool = False) -> Path:
        """Create a new folder under ``parent``: 4 hex digits, or 4 digits when ``numbered``."""
        while True:
            value = int(self.rng.integers(1, 10000 if numbered else 16**4))
            path = parent / (f"{value:04d}" if numbered else f"{value:04X}")
            if not path.exists():
                path.mkdir(parents=True)
                return path

    def file(self, folder: Path, ext: bool) -> Path:
        """A new file name in ``folder``: 8 hex digits, with ``.dcm`` when ``ext``."""
        while True:
            path = folder / (f"{int(self.rng.integers(0, 2**32)):08X}" + (".dcm" if ext else ""))
            if not path.exists():
                return path

    def rel(self, path: Path) -> str:
        """``path`` relative to the root, POSIX."""
        return path.relative_to(self.root).as_posix()

    def skip(self, path: Path, what: str, series_uid: str | None) -> None:
        """List ``path`` (one file of an object) as an object the importer must skip."""
        self.skipped.append({"path": self.rel(path), "what": what, "series_uid": series_uid})


@dataclass
class Study:
    """One study of one patient: where it is written and its manifest entry."""

    tree: Tree
    phi: FakePHI
    seed: int
    date: str
    anatomy: Anatomy
    folder: Path
    ext: bool
    entry: dict[str, Any]

    def common(self) -> dict[str, Any]:
        """The keyword arguments every writer of the study takes: ``phi``, ``seed``, date."""
        return {"phi": self.phi, "seed": self.seed, "study_date": self.date}

    def series_folder(self) -> Path:
        """A new numbered folder in the study folder."""
        return self.tree.folder(self.folder, numbered=True)

    def record(
        self,
        folder: Path,
        uid: str,
        modality: str,
        series: str,
        n_slices: int,
        mask: dict[str, Any] | None = None,
    ) -> None:
        """Add a series the importer must take to the manifest."""
        self.entry["series"].append(
            {
                "series_uid": uid,
                "modality": modality,
                "series": series,
                "folder": self.tree.rel(folder),
                "n_slices": n_slices,
                "mask": mask,
            }
        )


@dataclass
class Patient:
    """One patient: identity, folder, anatomy and manifest entry."""

    tree: Tree
    index: int
    seed: int
    phi: FakePHI
    folder: Path
    ext: bool
    entry: dict[str, Any]

    def study(self, number: int) -> Study:
        """Start study ``number`` (0 = baseline, 1 = follow-up 70 to 120 days later)."""
        rng = np.random.default_rng([self.seed, 0x57, self.index])
        start = np.datetime64("2022-01-03") + int(rng.integers(0, 600))
        date = start + number * int(rng.integers(70, 121))
        anatomy = Anatomy.draw(rng)
        phi = self.phi
        if number:
            phi = replace(phi, accession_number=f"ACC{int(rng.integers(10**6, 10**7))}")
            anatomy = anatomy.shrunk(0.7)
            self.entry["phi"].append(phi.accession_number)
        seed = int(self.seed) * 64 + 8 * self.index + number
        entry: dict[str, Any] = {
            "study_uid": _study_uids(phi, seed)[0],
            "study_date": str(date).replace("-", ""),
            "accession_number": phi.accession_number,
            "series": [],
        }
        self.entry["studies"].append(entry)
        folder = self.tree.folder(self.folder)
        return Study(self.tree, phi, seed, entry["study_date"], anatomy, folder, self.ext, entry)


def _written(folder: Path, write: Callable[[], object], ext: bool) -> tuple[str, list[Path]]:
    """Run ``write()``; return the SeriesInstanceUID and the files it added to ``folder``.

    Without ``ext`` the new files lose their ``.dcm`` extension.
    """
    before = set(folder.iterdir()) if folder.exists() else set()
    write()
    paths = sorted(set(folder.iterdir()) - before)
    if not ext:
        paths = [path.rename(path.with_suffix("")) for path in paths]
    uid = str(pydicom.dcmread(paths[0], stop_before_pixels=True).SeriesInstanceUID)
    return uid, paths


def move(paths: list[Path], folder: Path) -> list[Path]:
    """Move ``paths`` into ``folder`` (mixing series); their old folder goes when empty."""
    moved = [path.rename(folder / path.name) for path in paths]
    for parent in {path.parent for path in paths}:
        if not any(parent.iterdir()):
            parent.rmdir()
    return moved


# --------------------------------------------------------------------------------------------------
# series and masks


def write_ct(
    s: Study, folder: Path, ref: sitk.Image, description: str, contrast: bool = False, **kw: Any
) -> tuple[str, list[Path]]:
    """Write a CT of the study's anatomy on ``ref`` (venous contrast when ``contrast``)."""
    noise_seed = [s.seed, ref.GetSize()[2], zlib.crc32(description.encode())]
    image = render(ref, s.anatomy.classes(ref), _CT_HU[contrast], 8.0, noise_seed)
    agent = VENOUS if contrast else None
    write = partial(write_ct_series, image, folder, series_description=description, **kw)
    return _written(folder, partial(write, contrast_agent=agent, **s.common()), s.ext)


def write_pet(s: Study, folder: Path, ref: sitk.Image) -> tuple[str, list[Path]]:
    """Write an FDG PET (SUVbw stored as Bq/mL) of the study's anatomy on ``ref``."""
    suv = render(ref, s.anatomy.classes(ref), _PET_SUV, 0.08, [s.seed, 0xFD6])
    suv = sitk.Abs(suv)
    weight = 60.0 + s.seed % 30
    write = partial(write_pet_series, suv, folder, weight_kg=weight, **s.common())
    return _written(folder, write, s.ext)


def write_mr(
    s: Study, folder: Path, ref: sitk.Image, sequence: str, description: str, **kw: Any
) -> tuple[str, list[Path]]:
    """Write an MR ``sequence`` of the study's anatomy on ``ref``."""
    noise_seed = [s.seed, zlib.crc32(f"{sequence}{description}{kw}".encode())]
    image = render(ref, s.anatomy.classes(ref), _MR_SIGNAL[sequence], 15.0, noise_seed)
    write = partial(write_mr_series, image, folder, sequence=sequence, **s.common(), **kw)
    return _written(folder, partial(write, series_description=description), s.ext)


def write_mask(
    s: Study, series_dir: Path, ref: sitk.Image, fmt: str, names: list[str], out_dir: Path
) -> dict[str, Any]:
    """Write an RTSTRUCT or SEG of the series in ``series_dir`` into ``out_dir``.

    Returns:
        The manifest's ``mask`` entry.
    """
    out = s.tree.file(out_dir, s.ext)
    labels = label_map(ref, s.anatomy.classes(ref), len(names))
    mapping = dict(enumerate(names, start=1))
    if fmt == "RTSTRUCT":
        write_rtstruct(labels, series_dir, out, roi_names=mapping, phi=s.phi, seed=s.seed)
    else:
        write_seg(labels, series_dir, out, segment_names=mapping, seed=s.seed)
        _pin_seg(out, s.date)
    return {
        "file": s.tree.rel(out),
        "format": fmt,
        "names": list(names),
        "references_missing_series": False,
    }


def _pin_seg(path: Path, date: str) -> None:
    """Replace what highdicom draws at writing time (times, a random UID) by fixed values."""
    ds = pydicom.dcmread(path)
    ds.InstanceCreationDate = ds.ContentDate = ds.SeriesDate = date
    ds.InstanceCreationTime = ds.ContentTime = ds.SeriesTime = "121500.000"
    for item in ds.get("ContributingEquipmentSequence", []):
        if "ContributionDateTime" in item:
            item.ContributionDateTime = f"{date}121500"
    dimension_uid = _uid("seg-dimensions", ds.SOPInstanceUID)
    for item in (*ds.DimensionOrganizationSequence, *ds.DimensionIndexSequence):
        item.DimensionOrganizationUID = dimension_uid
    ds.save_as(path)


def reexport(paths: list[Path], tag: int) -> str:
    """Give the series new Series and SOP Instance UIDs (same frame of reference) in place."""
    uid = ""
    for path in paths:
        ds = pydicom.dcmread(path)
        uid = _uid("re-export", tag, ds.SeriesInstanceUID)
        sop = _uid("re-export", tag, ds.SOPInstanceUID)
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.save_as(path)
    return uid


def dose_report(s: Study) -> None:
    """Write the study's dose report in a folder of its own (an object to skip)."""
    path = s.tree.file(s.series_folder(), s.ext)
    uid = write_dose_report(path, phi=s.phi, seed=s.seed, study_date=s.date)
    s.tree.skip(path, "dose_report", uid)
