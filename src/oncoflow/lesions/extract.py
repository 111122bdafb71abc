"""Lesion crops of one patient, every time point: one ``<tp>.npz`` per time point.

Settings (a study's ``lesions`` block of config.yaml, :class:`LesionSettings`):

- ``images``: stems to crop (CT phases, MRI sequences, ``PET``); each uses its own converted mask
  (``<stem>_mask.nii.gz``) unless ``resample_onto`` maps it to a reference stem: then the image
  is resampled (linear) onto the reference's grid and cut with the reference's mask (seed 004:
  PET onto the CT grid);
- ``lesion_labels`` / ``organ_labels`` / ``context_labels``: mask labels of the lesion, of the
  organ whose slices outside the lesion give non-lesion context crops (pancreas), and of the
  organ giving per-slice context patches (lung, seed 004);
- ``size``, ``margin``, ``window``, ``negatives``, ``context_slices``.

Keys of each npz, per stem ``s`` (``n`` lesion slices, ``m`` negatives, ``k`` context slices):

=========================  ==============  ==============================================
``s/lesion``               (n, S, S)       lesion slice crops (normalised intensities)
``s/lesion_mask``          (n, S, S)       lesion mask crops (nearest neighbour)
``s/slices``               (n,)            slice indices (z) in the stem's grid
``s/area_mm2``             (n,)            lesion area per slice (mm^2)
``s/centre_vox``           (3,)            lesion centre (z, y, x), voxels; NaN if no lesion
``s/side_mm``, ``s/side_vox``              crop side (mm; voxels along y, x)
``s/negative``             (m, S, S)       non-lesion boxes on lesion slices
``s/negative_boxes``       (m, 3)          their centres (z, y, x)
``s/context``              (k, S, S)       organ slices just outside the lesion z-range
``s/context_slices``       (k,)
``s/organ_patch``          (n, S, S)       context-organ patch of each lesion slice (if asked)
``s/organ_boxes``          (n, 4)          (y centre, x centre, side y, side x) of those patches
``s/spacing``              (3,)            voxel size (z, y, x) in mm
=========================  ==============  ==============================================

plus ``patient_id``, ``timepoint`` and ``stems``.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oncoflow.errors import FeatureError
from oncoflow.lesions.crops import (
    context_slices,
    crop_square,
    lesion_box,
    max_inplane_extent_mm,
    negative_boxes,
    normalise,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LesionSettings:
    """A study's ``lesions`` block (see schemas/config.schema.yaml)."""

    images: tuple[str, ...]
    lesion_labels: tuple[int, ...]
    organ_labels: tuple[int, ...] = ()
    context_labels: tuple[int, ...] = ()
    resample_onto: dict[str, str] = field(default_factory=dict)
    size: int = 64
    margin: float = 2.0
    window: tuple[float, float] | None = (-100.0, 200.0)
    negatives: int = 1
    context_slices: int = 2
    masks: str = "given"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> LesionSettings:
        """From the config block (lists become tuples; unknown keys are an error)."""
        values = dict(data)
        for key in ("images", "lesion_labels", "organ_labels", "context_labels"):
            if key in values:
                values[key] = tuple(values[key])
        if values.get("window") is not None:
            values["window"] = tuple(float(v) for v in values["window"])
        try:
            return cls(**values)
        except TypeError as exc:
            msg = f"lesions settings: {exc}"
            raise FeatureError(msg) from exc


@dataclass
class _Volume:
    image: np.ndarray  # (z, y, x), normalised
    mask: np.ndarray  # (z, y, x) labels
    spacing: tuple[float, float, float]  # (z, y, x) mm
    modality: str


def _read(path: Path):
    import SimpleITK as sitk

    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        msg = f"{path}: cannot read ({str(exc).strip().splitlines()[-1]})"
        raise FeatureError(msg) from exc


def _load(
    folder: Path,
    stem: str,
    settings: LesionSettings,
    patient: str,
    tp: int,
    predicted: Path | None = None,
    fallback: Path | None = None,
) -> _Volume | None:
    """The stem's image and mask at one time point (None when the image is not there).

    ``predicted`` (a segmentation model's mask of this time point, on the grid of its input
    image) replaces the converted masks; ``fallback`` (the same) stands in only where the
    converted mask is missing. Stems on another grid need ``resample_onto``.
    """
    import SimpleITK as sitk

    image_path = folder / f"{stem}.nii.gz"
    if not image_path.exists():
        return None
    reference = settings.resample_onto.get(stem, stem)
    mask_path = predicted if predicted is not None else folder / f"{reference}_mask.nii.gz"
    if predicted is None and fallback is not None and not mask_path.exists():
        log.info(
            "patient %s, time point %s: %s crops from the predicted mask %s",
            patient,
            tp,
            stem,
            fallback,
        )
        mask_path = fallback
    if not mask_path.exists():
        msg = f"patient {patient}, time point {tp}: no mask {mask_path} for the {stem} crops"
        raise FeatureError(msg)
    mask = _read(mask_path)
    image = _read(image_path)
    if reference != stem:
        # PET (or another stem) onto the reference grid: linear, 0 outside its field of view
        image = sitk.Resample(image, mask, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    labels = sitk.GetArrayFromImage(mask)
    if array.shape != labels.shape:
        msg = f"patient {patient}, time point {tp}: {image_path} and {mask_path} differ in shape"
        raise FeatureError(msg)
    modality = stem.split("_", 1)[0]
    normalised = normalise(array, modality, settings.window)
    spacing = tuple(float(v) for v in reversed(mask.GetSpacing()))
    return _Volume(normalised, labels, spacing, modality)  # type: ignore[arg-type]


def _crops(volume: _Volume, slices, centre_yx, side_vox, size) -> np.ndarray:
    """Bilinear crops of the (normalised) image on the given slices."""
    stack = [crop_square(volume.image[z], centre_yx, side_vox, size) for z in slices]
    return np.stack(stack) if stack else np.zeros((0, size, size), np.float32)


def _stem_arrays(
    volume: _Volume,
    lesion: np.ndarray,
    side_mm: float,
    settings: LesionSettings,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    size = settings.size
    empty = np.zeros((0, size, size), np.float32)
    if not lesion.any():
        side = (side_mm / volume.spacing[1], side_mm / volume.spacing[2])
        return {
            "lesion": empty,
            "lesion_mask": empty.astype(np.uint8),
            "slices": np.zeros(0, int),
            "area_mm2": np.zeros(0),
            "centre_vox": np.full(3, np.nan),
            "side_mm": np.float64(side_mm),
            "side_vox": np.array(side),
            "negative": empty,
            "negative_boxes": np.zeros((0, 3)),
            "context": empty,
            "context_slices": np.zeros(0, int),
            "spacing": np.array(volume.spacing),
            **(
                {"organ_patch": empty, "organ_boxes": np.zeros((0, 4))}
                if settings.context_labels
                else {}
            ),
        }
    box = lesion_box(lesion, volume.spacing, side_mm)
    centre_yx = box.centre[1:]
    slices = np.nonzero(lesion.reshape(lesion.shape[0], -1).any(axis=1))[0]
    pixel_mm2 = volume.spacing[1] * volume.spacing[2]
    masks = [
        crop_square(lesion[z].astype(np.float32), centre_yx, box.side_vox, size, order=0)
        for z in slices
    ]
    negatives = negative_boxes(box, slices, lesion.shape[1:], settings.negatives, rng)
    out = {
        "lesion": _crops(volume, slices, centre_yx, box.side_vox, size),
        "lesion_mask": np.stack(masks).astype(np.uint8),
        "slices": slices.astype(int),
        "area_mm2": lesion[slices].reshape(len(slices), -1).sum(axis=1) * pixel_mm2,
        "centre_vox": np.array(box.centre),
        "side_mm": np.float64(box.side_mm),
        "side_vox": np.array(box.side_vox),
        "negative": np.stack(
            [crop_square(volume.image[z], (cy, cx), box.side_vox, size) for z, cy, cx in negatives]
        )
        if negatives
        else empty,
        "negative_boxes": np.array(negatives, dtype=float).reshape(-1, 3),
        "spacing": np.array(volume.spacing),
        "context": empty,
        "context_slices": np.zeros(0, int),
    }
    if settings.organ_labels:
        organ = np.isin(volume.mask, settings.organ_labels)
        ctx = context_slices(organ, box.z_range, settings.context_slices)
        out["context"] = _crops(volume, ctx, centre_yx, box.side_vox, size)
        out["context_slices"] = np.array(ctx, dtype=int)
    if settings.context_labels:
        patches, boxes = [], []
        organ = np.isin(volume.mask, settings.context_labels) | lesion
        for z in slices:
            ys, xs = np.nonzero(organ[z])
            cy, cx = (ys.min() + ys.max()) / 2.0, (xs.min() + xs.max()) / 2.0
            side = float(max(np.ptp(ys), np.ptp(xs)) + 1)
            patches.append(crop_square(volume.image[z], (cy, cx), (side, side), size))
            boxes.append((cy, cx, side, side))
        out["organ_patch"] = np.stack(patches)
        out["organ_boxes"] = np.array(boxes)
    return out


def _predicted_mask(
    folders: Sequence[Path], patient: str, tp: int, *, required: bool = True
) -> Path | None:
    """The predicted mask of a patient's time point among ``folders`` (None: use given masks).

    Args:
        folders: Folders of predicted masks ``<patient>_tp<tp>.nii.gz``.
        patient: Patient id.
        tp: Time point.
        required: A time point without a predicted mask is an error (else: None).

    Raises:
        FeatureError: ``required`` folders are given but none holds this time point (the case
            was not predicted: e.g. a training patient whose fold was not trained).
    """
    if not folders:
        return None
    name = f"{patient}_tp{tp}.nii.gz"
    for folder in folders:
        if (Path(folder) / name).exists():
            return Path(folder) / name
    if not required:
        return None
    msg = (
        f"patient {patient}, time point {tp}: no predicted mask {name} in "
        f"{', '.join(map(str, folders))} (train every fold so each case has a prediction)"
    )
    raise FeatureError(msg)


def write_npz(path: Path, arrays: Mapping[str, Any]) -> None:
    """Write ``arrays`` as an ``.npz`` that :func:`numpy.load` reads, the same bytes every run.

    Unlike :func:`numpy.savez` the zip entries carry a fixed date (1980-01-01) instead of the
    time of writing, so a rerun reproduces the file byte for byte. Entries are stored, not
    deflated: deflating float crops took ~45 % of the lesion stage's CPU time for files only
    ~1.5x smaller.

    Args:
        path: The ``.npz`` file to write (replaced if present).
        arrays: Entry name (without ``.npy``) -> array or scalar.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, value in arrays.items():
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(entry, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.asanyarray(value), allow_pickle=False)


def extract_patient(
    converted: Path,
    patient: str,
    settings: LesionSettings,
    out_dir: Path,
    *,
    seed: int = 0,
    predicted_masks: Sequence[Path] = (),
    fallback_masks: Sequence[Path] = (),
) -> list[Path]:
    """Write ``out_dir/<tp>.npz`` for every time point of ``patient`` that has a configured stem.

    The crop side of each stem comes from its baseline: the first time point where the stem's
    mask has lesion voxels (seed 000 used the baseline scan of the same phase).

    Args:
        converted: ``results/converted``.
        patient: Patient id.
        settings: The study's lesion settings.
        out_dir: Folder of the npz files.
        seed: Seed of the negative boxes.
        predicted_masks: Folders of predicted masks ``<patient>_tp<tp>.nii.gz`` (nnU-Net
            prediction subsets) used instead of the converted masks; empty = given masks.
        fallback_masks: Folders of predicted masks (same naming) used only where a time point
            has no converted mask (a new cohort's cases without masks, segmented by a frozen
            nnU-Net at ``apply``).

    Raises:
        FeatureError: No configured stem at any time point, a missing mask (given or predicted),
            or no lesion in any time point of a stem (the patient and stem are named).
    """
    folder = Path(converted) / patient
    timepoints = sorted(int(p.name) for p in folder.glob("*") if p.is_dir() and p.name.isdigit())
    volumes: dict[int, dict[str, _Volume]] = {}
    for tp in timepoints:
        predicted = _predicted_mask(predicted_masks, patient, tp)
        fallback = _predicted_mask(fallback_masks, patient, tp, required=False)
        loaded = {
            s: _load(folder / str(tp), s, settings, patient, tp, predicted, fallback)
            for s in settings.images
        }
        present = {s: v for s, v in loaded.items() if v is not None}
        if present:
            volumes[tp] = present
    if not volumes:
        msg = f"patient {patient}: no image {', '.join(settings.images)} under {folder}"
        raise FeatureError(msg)
    sides: dict[str, float] = {}
    for stem in settings.images:
        for tp in sorted(volumes):
            volume = volumes[tp].get(stem)
            if volume is None:
                continue
            extent = max_inplane_extent_mm(
                np.isin(volume.mask, settings.lesion_labels), volume.spacing
            )
            if extent > 0:
                sides[stem] = settings.margin * extent
                break
        else:
            if any(stem in v for v in volumes.values()):
                labels = list(settings.lesion_labels)
                msg = f"patient {patient}: {stem} has no lesion voxel (labels {labels}) at any time"
                raise FeatureError(msg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for tp, stems in sorted(volumes.items()):
        rng = np.random.default_rng([seed, tp, sum(map(ord, patient))])
        arrays: dict[str, Any] = {
            "patient_id": np.array(patient),
            "timepoint": np.int64(tp),
            "stems": np.array(sorted(stems)),
        }
        for stem, volume in sorted(stems.items()):
            lesion = np.isin(volume.mask, settings.lesion_labels)
            for key, value in _stem_arrays(volume, lesion, sides[stem], settings, rng).items():
                arrays[f"{stem}/{key}"] = value
        path = out_dir / f"{tp}.npz"
        write_npz(path, arrays)
        n = {s: len(arrays[f"{s}/slices"]) for s in stems}
        log.info("patient %s, time point %d: lesion slices %s -> %s", patient, tp, n, path)
        written.append(path)
    return written
