"""Inputs of the deep models: lesion crops, tabular variables, labels and fold membership.

* :func:`load_lesions` reads one patient's ``results/<study>/lesions/<patient>/<tp>.npz`` files
  (written by :mod:`oncoflow.lesions`) into :class:`StemCrops` per time point and image stem.
* :func:`select_slices` picks a fixed number of lesion slices (the largest lesion areas first,
  repeated when a lesion has fewer) so every patient becomes a tensor of one shape.
* the tabular variables are encoded by :class:`oncoflow.features.tabular.TabularEncoder`
  (statistics of the fold's training patients only).
* :func:`fold_patients` splits a fold's training patients into the part that fits weights and an
  inner validation part (stratified, seeded) that alone drives early stopping, model selection
  and thresholds; the fold's ``apply`` patients and the test splits never touch training.
* :func:`downsample` resizes crops to the model's input size (area averaging, exact for integer
  factors).
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from oncoflow.errors import CohortError, ModelError

log = logging.getLogger(__name__)


@dataclass
class StemCrops:
    """The crops of one image stem at one time point of one patient.

    Attributes:
        lesion: Lesion slices (n, S, S), float32 (CT windowed to [0, 1], MR scaled, PET in SUV).
        mask: Lesion masks of the same slices (n, S, S), uint8.
        area_mm2: Lesion area of each slice (n,) in mm².
        slice_mm: Slice spacing (mm), so ``sum(area_mm2) * slice_mm`` is the lesion volume (mm³).
        negative: Non-lesion crops (m, S, S) (matched boxes and organ slices), may be empty.
        context: Context patches of the lesion slices (n, S, S) (e.g. lung), may be empty.
    """

    lesion: np.ndarray
    mask: np.ndarray
    area_mm2: np.ndarray
    slice_mm: float
    negative: np.ndarray
    context: np.ndarray

    @property
    def volume_mm3(self) -> float:
        """Lesion volume ``V = sum_slices(area_mm2) * slice_mm`` (mm³)."""
        return float(np.sum(self.area_mm2) * self.slice_mm)

    @property
    def max_area_mm2(self) -> float:
        """Largest lesion slice area (mm²)."""
        return float(np.max(self.area_mm2)) if len(self.area_mm2) else 0.0


PatientLesions = dict[int, dict[str, StemCrops]]
"""Time point -> image stem -> crops of one patient."""


def _stem_crops(data: Mapping[str, np.ndarray], stem: str, path: Path) -> StemCrops:
    key = f"{stem}/lesion"
    if key not in data:
        msg = f"{path}: no crops of image {stem} (stems in the file: {list(data['stems'])})"
        raise CohortError(msg)
    negatives = [data[f"{stem}/negative"]]
    if f"{stem}/context" in data and len(data[f"{stem}/context"]):
        negatives.append(data[f"{stem}/context"])
    context_key = f"{stem}/organ_patch"
    lesion = data[key].astype(np.float32)
    context = data[context_key].astype(np.float32) if context_key in data else lesion[:0]
    return StemCrops(
        lesion=lesion,
        mask=data[f"{stem}/lesion_mask"],
        area_mm2=data[f"{stem}/area_mm2"].astype(float),
        slice_mm=float(data[f"{stem}/spacing"][2]),
        negative=np.concatenate(negatives).astype(np.float32),
        context=context,
    )


def load_lesions(folder: Path, stems: Sequence[str]) -> PatientLesions:
    """Read every ``<tp>.npz`` of one patient's lesion folder.

    Args:
        folder: ``results/<study>/lesions/<patient>``.
        stems: Image stems to read (e.g. ``CT_arterial``); each must be in every file.

    Returns:
        Time point -> stem -> :class:`StemCrops`, time points in numeric order.

    Raises:
        CohortError: The folder has no ``.npz`` file, a file is unreadable or lacks a stem.
    """
    files = sorted(Path(folder).glob("*.npz"), key=lambda p: int(p.stem))
    if not files:
        msg = f"{folder}: no lesion crops (<timepoint>.npz); run the lesions stage first"
        raise CohortError(msg)
    out: PatientLesions = {}
    for path in files:
        try:
            with np.load(path) as data:
                out[int(path.stem)] = {s: _stem_crops(data, s, path) for s in stems}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            msg = f"{path}: cannot read lesion crops ({exc})"
            raise CohortError(msg) from exc
    return out


def select_slices(crops: StemCrops, k: int, *, what: str = "lesion") -> np.ndarray:
    """``k`` slices (k, S, S) of the lesion (its mask, or its context), the largest areas first.

    ``what`` is ``lesion`` (the image crops), ``mask`` (their lesion masks, float32) or
    ``context``.

    Slices are returned in their original z order; a lesion with fewer than ``k`` slices has its
    slices repeated (cyclically), so mean pooling over the ``k`` is the area-ranked mean.

    Raises:
        ModelError: The stem has no lesion slice.
    """
    stacks = {"lesion": crops.lesion, "mask": crops.mask, "context": crops.context}
    stack = stacks[what].astype(np.float32, copy=False)
    if len(stack) == 0:
        msg = f"no {what} slice to select"
        raise ModelError(msg)
    order = np.argsort(-crops.area_mm2, kind="stable")[:k]
    chosen = np.sort(order)
    reps = np.resize(chosen, k)
    return stack[reps]


def downsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the last two axes to ``size`` x ``size`` (area averaging; identity when equal)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    lead = images.shape[:-2]
    flat = images.reshape(-1, 1, *images.shape[-2:])
    out = F.interpolate(flat, size=(size, size), mode="area")
    return out.reshape(*lead, size, size)


def fold_patients(
    fit: Sequence[str],
    labels: Mapping[str, Any],
    *,
    inner_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[list[str], list[str]]:
    """Split a fold's training patients into (train, inner validation), stratified on ``labels``.

    Args:
        fit: The fold's training patients.
        labels: Patient -> stratum (e.g. any progression); patients without an entry form their
            own stratum.
        inner_fraction: Share of each stratum held out for early stopping / selection.
        seed: Seed of the draw.

    Returns:
        Sorted ``(train, inner)`` patient lists, disjoint, together ``fit``.

    Raises:
        ModelError: Fewer than 4 training patients.
    """
    patients = sorted(map(str, fit))
    if len(patients) < 4:
        msg = f"only {len(patients)} training patients in the fold: too few for an inner split"
        raise ModelError(msg)
    rng = np.random.default_rng(seed)
    inner: list[str] = []
    strata: dict[str, list[str]] = {}
    for p in patients:
        strata.setdefault(str(labels.get(p, "?")), []).append(p)
    for key in sorted(strata):
        members = strata[key]
        n = round(len(members) * inner_fraction)
        inner += [members[i] for i in rng.permutation(len(members))[:n]]
    if not inner:
        inner = [patients[int(rng.integers(len(patients)))]]
    train = sorted(set(patients) - set(inner))
    return train, sorted(inner)


def core_mask(
    lesion: np.ndarray, erode: int, min_voxels: int, *, in_plane: bool = False
) -> np.ndarray:
    """The lesion mask eroded by ``erode`` voxels, or the whole mask when too little remains.

    Erosion is 3D with face connectivity, or per slice with a 3x3 square (``in_plane``, for a
    stack of 2D crops); when fewer than ``min_voxels`` voxels survive the mask is returned as it
    is (a small lesion has no core to read).
    """
    from scipy import ndimage

    lesion = np.asarray(lesion, dtype=bool)
    if erode <= 0 or not lesion.any():
        return lesion
    structure = np.ones((1, 3, 3), bool) if in_plane else None
    core = ndimage.binary_erosion(lesion, structure=structure, iterations=erode)
    return core if core.sum() >= min_voxels else lesion


def ring_mask(lesion: np.ndarray, inner: int, outer: int) -> np.ndarray:
    """The pixels ``inner < d <= outer`` crop pixels outside a stack of lesion masks, in plane.

    Args:
        lesion: Lesion masks (slices, y, x), boolean or 0/1.
        inner: In-plane dilations (3x3 cross, so a city-block distance) kept clear of the
            lesion: its rim's partial volume stays out of the ring.
        outer: In-plane dilations that bound the ring.

    Returns:
        Boolean mask of the ring, the same shape; empty where a slice holds no lesion.

    Raises:
        ValueError: ``0 <= inner < outer`` does not hold.
    """
    from scipy import ndimage

    if not 0 <= inner < outer:
        msg = f"a ring needs 0 <= inner < outer, got ({inner}, {outer})"
        raise ValueError(msg)
    lesion = np.asarray(lesion, dtype=bool)
    cross = np.zeros((1, 3, 3), bool)
    cross[0] = ndimage.generate_binary_structure(2, 1)
    near = ndimage.binary_dilation(lesion, cross, iterations=inner) if inner else lesion
    return ndimage.binary_dilation(lesion, cross, iterations=outer) & ~near


CORE_STATISTICS: tuple[str, ...] = ("p10", "median", "p90", "iqr", "spread")
"""Columns of :func:`lesion_core_statistics`."""


def lesion_core_statistics(
    image: np.ndarray, lesion: np.ndarray, *, erode: int = 1, min_voxels: int = 20
) -> dict[str, float]:
    """Intensity percentiles of the lesion's core, away from its boundary.

    The lesion mask is eroded by ``erode`` voxels (3D, face connectivity) so that partial volume
    with the surrounding tissue (lung at -800 HU around a 40 HU nodule) does not dominate the
    spread; when fewer than ``min_voxels`` core voxels remain the whole lesion is used. The
    spread of the core is what a texture-sensitive reader sees (heterogeneous vs homogeneous
    enhancement); resampled crops blur it away.

    Args:
        image: The image (z, y, x), e.g. CT in HU.
        lesion: Boolean lesion mask on the same grid.
        erode: Erosion iterations (voxels).
        min_voxels: Smallest core used as it is.

    Returns:
        ``p10``, ``median``, ``p90`` (image units), ``iqr = p75 - p25`` and
        ``spread = p90 - p10``; NaN when the mask is empty.
    """
    values = np.asarray(image)[core_mask(lesion, erode, min_voxels)]
    if values.size == 0:
        return dict.fromkeys(CORE_STATISTICS, float("nan"))
    p10, p25, p50, p75, p90 = np.percentile(values.astype(np.float64), [10, 25, 50, 75, 90])
    return {
        "p10": float(p10),
        "median": float(p50),
        "p90": float(p90),
        "iqr": float(p75 - p25),
        "spread": float(p90 - p10),
    }


def slice_examples(
    lesions: dict[str, PatientLesions], stems: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stage-A examples of the given patients: crops (n, S, S), labels (n,), patient index (n,).

    Lesion crops get label 1, non-lesion crops label 0; every time point and phase.
    """
    images, labels, owners = [], [], []
    for i, patient in enumerate(sorted(lesions)):
        for tp in sorted(lesions[patient]):
            for stem in stems:
                crops = lesions[patient][tp][stem]
                for stack, label in ((crops.lesion, 1), (crops.negative, 0)):
                    images.append(stack)
                    labels.append(np.full(len(stack), label))
                    owners.append(np.full(len(stack), i))
    return (
        np.concatenate(images).astype(np.float32),
        np.concatenate(labels).astype(np.int64),
        np.concatenate(owners).astype(np.int64),
    )


def size_features(lesions: PatientLesions, stems: Sequence[str]) -> dict[int, np.ndarray]:
    """Per time point ``[log(1+V), log(1+A), log(1+V) - log(1+V_prev)]``.

    ``V`` is the lesion volume (mm³) and ``A`` the largest lesion slice area (mm²), each the mean
    over ``stems``; the change is 0 at the first time point (the cnn_lstm tabular size inputs).
    """
    out: dict[int, np.ndarray] = {}
    previous = None
    for tp in sorted(lesions):
        volume = float(np.mean([lesions[tp][s].volume_mm3 for s in stems]))
        area = float(np.mean([lesions[tp][s].max_area_mm2 for s in stems]))
        log_v = np.log1p(volume)
        change = 0.0 if previous is None else log_v - previous
        out[tp] = np.array([log_v, np.log1p(area), change], dtype=np.float32)
        previous = log_v
    return out


def intensity_features(
    lesions: PatientLesions,
    stems: Sequence[str],
    *,
    erode: int = 0,
    min_pixels: int = 20,
    cross_phase: bool = False,
    reference_ring: tuple[int, int] | None = None,
) -> dict[int, np.ndarray]:
    """Per time point ``[mean, sd]`` of the lesion voxels of the crops, mean over phases.

    With ``erode > 0`` the statistics read the lesion's core: each slice's mask eroded in plane
    by ``erode`` crop pixels (3x3 structuring element), so that the partial volume of the rim
    with the surrounding tissue does not swamp the texture in the SD (the whole mask when fewer
    than ``min_pixels`` core pixels remain). A time point whose masks hold no lesion voxel takes
    the previous time point's values (the next one's at baseline; zeros when no time point has
    any).

    With ``cross_phase`` a third value is the texture that the phases share:
    ``sqrt(max(mean_{i<j} cov(x_i, x_j), 0))`` over the core pixels, ``x_i`` phase ``i``'s
    values minus their mean. Phases co-registered on one grid share the lesion's texture and
    not the scanner noise, so the covariance of two phases keeps the texture variance and the
    noise variance cancels from it, whatever the scanner (the SD carries both).

    With ``reference_ring = (inner, outer)`` each phase's mean and SD are divided by the median
    of its pixels in a ring around the lesion (:func:`ring_mask`: the mask dilated in plane by
    ``outer`` crop pixels minus the mask dilated by ``inner``): the surrounding tissue lies under
    the same scanner gain and the same smooth multiplicative bias field (MRI's coil
    inhomogeneity), so the ratio keeps the lesion's contrast to it and drops both. A phase whose
    ring holds no pixel, or whose ring median is not positive, is left out at that time point.

    Raises:
        CohortError: ``cross_phase`` with fewer than two stems, or phases whose crops of one
            time point do not share its lesion mask.
    """
    if cross_phase and len(stems) < 2:
        msg = f"cross-phase texture needs two or more image stems, got {list(stems)}"
        raise CohortError(msg)
    values: dict[int, np.ndarray | None] = {}
    for tp in sorted(lesions):
        per_phase, residuals = [], []
        first = None
        for stem in stems:
            crops = lesions[tp][stem]
            core = core_mask(crops.mask > 0, erode, min_pixels, in_plane=True)
            first = core if first is None else first
            if cross_phase and not np.array_equal(core, first):
                msg = f"time point {tp}: {stem}'s lesion mask differs from {stems[0]}'s"
                raise CohortError(msg)
            inside = crops.lesion[core]
            scale = 1.0
            if reference_ring is not None and inside.size:
                ring = crops.lesion[ring_mask(crops.mask > 0, *reference_ring)]
                scale = float(np.median(ring)) if ring.size else 0.0
                if scale <= 0:
                    continue
            if inside.size:
                per_phase.append((float(inside.mean()) / scale, float(inside.std()) / scale))
                residuals.append(inside.astype(np.float64) - inside.mean())
        row = np.mean(per_phase, axis=0) if per_phase else None
        if row is not None and cross_phase:
            pairs = [
                float(np.mean(residuals[i] * residuals[j]))
                for i in range(len(residuals))
                for j in range(i + 1, len(residuals))
            ]
            # every phase reads the same core (checked above), so there are len(stems) >= 2
            row = np.append(row, float(np.sqrt(max(np.mean(pairs), 0.0))))
        values[tp] = row.astype(np.float32) if row is not None else None
    known = [v for v in values.values() if v is not None]
    fallback = known[0] if known else np.zeros(3 if cross_phase else 2, dtype=np.float32)
    out: dict[int, np.ndarray] = {}
    for tp in sorted(values):
        value = values[tp]
        fallback = value if value is not None else fallback
        out[tp] = fallback
    return out
