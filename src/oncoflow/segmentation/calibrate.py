"""Reference-tissue calibration of CT channels: a scanner's HU offset measured on each case.

A CT scanner's calibration drifts: the demo's external site reads every tissue 22 HU lower than
site_a and about 50 HU lower than site_b (docs/demo.md), as large as the subtype's own shift of
the lesion's attenuation (sd 14 HU). A network and its head that read absolute attenuation then
move their class boundaries with the scanner. A tissue whose attenuation does not depend on the
class (for pancreas_multitask the pancreas around the lesion, label 1) measures the drift on
each case, and the case's CT channels are shifted so that the tissue's median reads ``r``::

    x'_v = x_v + (r - median_{u in tissue} x_u)        (HU; every voxel v of the channel)

The median is that of the case's own voxels of the tissue label: a given mask where the case
has one, else the network's own prediction (:func:`iterated_offset`). Nothing about the
case's class is read. A gain (HU scale) is not corrected, only the offset; every CT channel of
a case gets the offset measured on its first CT channel (one scanner).

In the workflow (``nnunet.calibrate``, :class:`Calibration`) the export writes the training
cases calibrated through their given masks into ``imagesTr`` (what nnU-Net plans, preprocesses
and trains on) and keeps them uncalibrated in :data:`UNCALIBRATED`; every prediction (validation
cases of a fold, test cases, a new cohort in ``apply``) starts from the uncalibrated image and
calibrates it through the network's own segmentation, so validation figures are measured the
way test figures are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oncoflow.errors import SegmentationError

log = logging.getLogger(__name__)

UNCALIBRATED = "imagesTrUncalibrated"
"""Folder of the raw dataset holding the training cases' images before calibration."""

MAX_OFFSET_HU = 150.0
"""Largest offset (HU) a segmentation pass may find: scanner drifts are tens of HU (the demo's
external site 22-50 HU), so a larger one means the pass labelled another tissue as the
reference (bone, contrast-filled vessels) and is not used."""


def tissue_median(
    data: np.ndarray, labels: np.ndarray, label: int, *, case: str, channel: int = 0
) -> float:
    """Median intensity (HU) of one channel over the voxels of ``label``.

    Args:
        data: Channels ``(C, Z, Y, X)`` as nnU-Net's reader returns them.
        labels: Label map ``(Z, Y, X)`` or ``(1, Z, Y, X)`` on the same grid.
        label: The reference tissue's label value.
        case: Case id, named in errors.
        channel: The channel read.

    Raises:
        SegmentationError: The grids differ, or the case has no voxel of ``label``.
    """
    labels = np.asarray(labels)
    if labels.ndim == data.ndim:
        labels = labels[0]
    if labels.shape != data.shape[1:]:
        msg = f"case {case}: label map {labels.shape} and image {data.shape[1:]} differ in shape"
        raise SegmentationError(msg)
    inside = labels == label
    if not inside.any():
        msg = f"case {case}: no voxel of reference label {label}; cannot calibrate its CT"
        raise SegmentationError(msg)
    return float(np.median(data[channel][inside]))


def shift_channels(data: np.ndarray, offset: float, channels: Sequence[int]) -> np.ndarray:
    """A copy of ``data`` with ``offset`` (HU) added to the given channels."""
    out = np.array(data, dtype=np.float32, copy=True)
    for c in channels:
        out[c] += np.float32(offset)
    return out


def iterated_offset(
    data: np.ndarray,
    segment: Callable[[np.ndarray], np.ndarray],
    label: int,
    reference_hu: float,
    *,
    case: str,
    channels: Sequence[int] = (0,),
    passes: int = 2,
    max_offset_hu: float = MAX_OFFSET_HU,
    start: float = 0.0,
) -> float:
    """The offset of a case without a mask, from the network's own segmentation of the tissue.

    Pass 1 segments the image shifted by ``start`` (0: uncalibrated); each further pass segments
    the image calibrated with the previous offset (a network trained on calibrated images
    segments those best). A pass that finds no voxel of the tissue, or whose tissue gives an
    offset beyond ``max_offset_hu`` (a failed segmentation, not a scanner), ends the passes with
    the last offset found (``start`` when pass 1 fails), with a warning naming the case.

    Args:
        data: Channels ``(C, Z, Y, X)`` in HU.
        segment: Image ``(C, Z, Y, X)`` -> label map on the same grid (a trained network).
        label: The reference tissue's label value.
        reference_hu: ``r``, the median the tissue is brought to.
        case: Case id, named in errors and warnings.
        channels: The CT channels shifted between passes; the first is measured.
        passes: Segmentations run (``>= 1``).
        max_offset_hu: Largest plausible ``|offset|`` (HU).
        start: Offset (HU) of the image pass 1 segments.

    Returns:
        ``r - median`` of the last accepted pass's tissue, HU.
    """
    offset = float(start)
    for n in range(1, max(1, passes) + 1):
        labels = np.asarray(segment(shift_channels(data, offset, channels)))
        if not np.any(labels == label):
            log.warning("case %s: segmentation pass %d found no voxel of reference label %d; "
                        "calibrated by %+.1f HU", case, n, label, offset)  # fmt: skip
            return offset
        found = reference_hu - tissue_median(data, labels, label, case=case, channel=channels[0])
        if abs(found) > max_offset_hu:
            log.warning("case %s: segmentation pass %d gives an offset of %+.1f HU, beyond "
                        "%.0f HU (the reference label covers another tissue); calibrated by "
                        "%+.1f HU", case, n, found, max_offset_hu, offset)  # fmt: skip
            return offset
        offset = found
    return offset


def foreground_confidence(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean over the voxels labelled foreground (``> 0``) of the largest class probability.

    How sure the network is of what it segmented: ``mean_{v: l_v > 0} max_k p_kv`` (0 when it
    labels nothing). ``probabilities`` is ``(K, Z, Y, X)`` on the grid of ``labels``.
    """
    labels = np.asarray(labels)
    foreground = labels.reshape(labels.shape[-3:]) > 0
    if not foreground.any():
        return 0.0
    return float(np.asarray(probabilities).max(axis=0)[foreground].mean())


def most_confident_offset(
    data: np.ndarray,
    scored: Callable[[np.ndarray], tuple[np.ndarray, float]],
    label: int,
    reference_hu: float,
    *,
    case: str,
    starts: Sequence[float],
    channels: Sequence[int] = (0,),
    passes: int = 2,
    max_offset_hu: float = MAX_OFFSET_HU,
) -> float:
    """:func:`iterated_offset` from each of ``starts``; the offset whose last pass was surest.

    A network trained on calibrated images may settle on another structure when pass 1 starts
    far from the scanner's offset (both are fixed points of the passes: pass 2 repeats pass 1).
    Each start runs the passes; the result kept is the one whose last segmentation has the
    highest :func:`foreground_confidence`. Nothing about the case's class is read.

    Args:
        data: Channels ``(C, Z, Y, X)`` in HU.
        scored: Image -> (label map, foreground confidence of that segmentation).
        label: The reference tissue's label value.
        reference_hu: ``r``, the median the tissue is brought to.
        case: Case id, named in warnings and in the log line of the choice.
        starts: Offsets (HU) of pass 1, one run of the passes each.
        channels: The CT channels shifted between passes; the first is measured.
        passes: Segmentations per start.
        max_offset_hu: Largest plausible ``|offset|`` (HU).
    """
    results = []
    for start in starts:
        last = {"confidence": 0.0}

        def segment(image: np.ndarray, last: dict[str, float] = last) -> np.ndarray:
            labels, last["confidence"] = scored(image)
            return labels

        offset = iterated_offset(
            data, segment, label, reference_hu, case=case, channels=channels, passes=passes,
            max_offset_hu=max_offset_hu, start=start,
        )  # fmt: skip
        results.append((last["confidence"], offset, start))
    confidence, offset, start = max(results, key=lambda r: r[0])
    log.info("case %s: pass 1 from %+.0f HU was surest (%.3f): %+.1f HU", case, start,
             confidence, offset)  # fmt: skip
    return offset


@dataclass(frozen=True)
class Calibration:
    """A study's ``nnunet.calibrate`` block, resolved against its channels.

    Attributes:
        label: The reference tissue's label value (pancreas_multitask: 1, the pancreas).
        reference_hu: ``r``, the median the tissue is brought to (HU).
        channels: Indices of the CT channels (the offset is measured on the first).
        passes: Segmentations of a case without a mask (:func:`iterated_offset`).
        max_offset_hu: Largest plausible offset of a predicted case (:func:`iterated_offset`).
        starts: Offsets (HU) pass 1 starts from; several = :func:`most_confident_offset`.
    """

    label: int
    reference_hu: float
    channels: tuple[int, ...]
    passes: int = 2
    max_offset_hu: float = MAX_OFFSET_HU
    starts: tuple[float, ...] = (0.0,)

    @classmethod
    def from_block(
        cls, block: Mapping[str, object], ct_channels: Sequence[int]
    ) -> Calibration | None:
        """From the config block (``None`` when empty); an error without a CT channel."""
        if not block:
            return None
        if not ct_channels:
            msg = "nnunet.calibrate shifts CT channels, and the study's channels have none"
            raise SegmentationError(msg)
        return cls(
            label=int(block["label"]),  # type: ignore[call-overload]
            reference_hu=float(block["reference_hu"]),  # type: ignore[arg-type]
            channels=tuple(int(c) for c in ct_channels),
            passes=int(block.get("passes", 2)),  # type: ignore[call-overload]
            max_offset_hu=float(block.get("max_offset_hu", MAX_OFFSET_HU)),  # type: ignore[arg-type]
            starts=tuple(float(v) for v in block.get("starts", [0.0])),  # type: ignore[attr-defined]
        )

    def given_offset(self, data: np.ndarray, labels: np.ndarray, *, case: str) -> float:
        """``r - median`` of the tissue of a case's given label map (HU)."""
        median = tissue_median(data, labels, self.label, case=case, channel=self.channels[0])
        return self.reference_hu - median

    def predicted_offset(
        self,
        data: np.ndarray,
        scored: Callable[[np.ndarray], tuple[np.ndarray, float]],
        *,
        case: str,
    ) -> float:
        """The offset of a case without a mask through a network's segmentations.

        ``scored``: image -> (label map, :func:`foreground_confidence`); the passes of
        :func:`most_confident_offset` from each of :attr:`starts` (one start: its passes'
        offset, the confidence deciding nothing).
        """
        return most_confident_offset(
            data, scored, self.label, self.reference_hu, case=case, starts=self.starts,
            channels=self.channels, passes=self.passes, max_offset_hu=self.max_offset_hu,
        )  # fmt: skip

    def apply(self, data: np.ndarray, offset: float) -> np.ndarray:
        """``data`` with ``offset`` added to the CT channels (a copy)."""
        return shift_channels(data, offset, self.channels)


def write_calibrated(
    case: str,
    images: Sequence[Path],
    label_file: Path,
    calibration: Calibration,
    out_folder: Path,
) -> float:
    """Write a case's channels calibrated through its given label map; return the offset (HU).

    The calibrated channels are written as ``out_folder/<case>_<i:04d>.nii.gz`` (float32 on
    the source grid); other channels are copied unchanged.
    """
    import SimpleITK as sitk

    volumes = [sitk.ReadImage(str(path)) for path in images]
    data = np.stack([sitk.GetArrayFromImage(v).astype(np.float32) for v in volumes])
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(label_file)))
    offset = calibration.given_offset(data, labels, case=case)
    shifted = calibration.apply(data, offset)
    Path(out_folder).mkdir(parents=True, exist_ok=True)
    for i, volume in enumerate(volumes):
        out = sitk.GetImageFromArray(shifted[i]) if i in calibration.channels else volume
        out.CopyInformation(volume)
        sitk.WriteImage(out, str(Path(out_folder) / f"{case}_{i:04d}.nii.gz"), useCompression=True)
    return offset
