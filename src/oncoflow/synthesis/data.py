"""Lung CT + lung / nodule masks -> fixed-size tensors for the diffusion model, and back.

Intensities: HU clipped to a window (default [-1000, 400]) and mapped linearly to [-1, 1] (one
global mapping; the seed min-max scaled every slice on its own, which changes the HU meaning from
slice to slice). Masks: label 1 = lung, 2 = nodule -> two channels in {-1, 1}. Volumes are resized
to the model size: CT by area averaging (trilinear when enlarging), the lung channel by area
fraction >= 0.5 and the nodule channel by "any voxel" so a small nodule never vanishes.
:func:`restore` brings a sample back to the real image's grid: the lung and nodule voxels come from
the (trilinearly resized) sample, every other voxel is the real CT, and the NIfTI keeps the real
image's affine and header.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from oncoflow.errors import ModelError

LUNG, NODULE = 1, 2


@dataclass
class Case:
    """One patient's volume at the model size and what is needed to write a sample back.

    Attributes:
        patient_id: Patient.
        image: ``(1, *size)`` CT in [-1, 1].
        condition: ``(2, *size)`` lung and nodule channels in {-1, 1}.
        hu: The real CT in HU on its own grid.
        labels: The real label map on its own grid.
        affine: The real image's affine (voxel -> mm).
        path: The real CT file.
    """

    patient_id: str
    image: torch.Tensor
    condition: torch.Tensor
    hu: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    path: Path


def to_unit(
    hu: np.ndarray | torch.Tensor, window: tuple[float, float]
) -> np.ndarray | torch.Tensor:
    """HU -> [-1, 1]: ``2 (clip(hu, lo, hi) - lo) / (hi - lo) - 1``."""
    lo, hi = window
    clipped = hu.clip(lo, hi)
    return 2 * (clipped - lo) / (hi - lo) - 1


def to_hu(
    unit: np.ndarray | torch.Tensor, window: tuple[float, float]
) -> np.ndarray | torch.Tensor:
    """[-1, 1] -> HU, the inverse of :func:`to_unit` inside the window."""
    lo, hi = window
    return (unit + 1) / 2 * (hi - lo) + lo


def _resize(volume: torch.Tensor, size: tuple[int, int, int], how: str) -> torch.Tensor:
    """Resize a ``(c, *spatial)`` tensor; ``how``: ``mean`` | ``any`` | ``majority``."""
    x = volume[None].float()
    shrinking = all(s <= v for s, v in zip(size, x.shape[2:], strict=True))
    if how == "mean":
        mode = "area" if shrinking else "trilinear"
        out = F.interpolate(
            x, size=size, mode=mode, **({} if shrinking else {"align_corners": False})
        )
    elif shrinking:
        pooled = F.adaptive_max_pool3d(x, size) if how == "any" else F.adaptive_avg_pool3d(x, size)
        out = (pooled >= 0.5).float()
    else:
        out = F.interpolate(x, size=size, mode="nearest")
    return out[0]


def load_case(
    patient_id: str,
    image_path: Path | str,
    mask_path: Path | str,
    *,
    size: tuple[int, int, int],
    window: tuple[float, float] = (-1000.0, 400.0),
) -> Case:
    """Read a converted CT and its label map and prepare them at the model ``size``.

    Raises:
        ModelError: Unreadable files, image and mask on different grids, or no lung voxel.
    """
    import nibabel as nib

    image_path, mask_path = Path(image_path), Path(mask_path)
    try:
        image = nib.load(str(image_path))
        mask = nib.load(str(mask_path))
    except (OSError, ValueError) as exc:
        msg = f"patient {patient_id}: cannot read {image_path} / {mask_path} ({exc})"
        raise ModelError(msg) from exc
    hu = np.asarray(image.dataobj, dtype=np.float32)
    labels = np.asarray(mask.dataobj).astype(np.int16)
    if hu.shape != labels.shape or not np.allclose(image.affine, mask.affine, atol=1e-3):
        msg = f"patient {patient_id}: {image_path} and {mask_path} are not on one grid"
        raise ModelError(msg)
    if not (labels == LUNG).any():
        msg = f"patient {patient_id}: {mask_path} has no lung voxel (label {LUNG})"
        raise ModelError(msg)
    unit = torch.from_numpy(to_unit(hu, window))[None]
    lung = torch.from_numpy(np.isin(labels, (LUNG, NODULE)).astype(np.float32))[None]
    nodule = torch.from_numpy((labels == NODULE).astype(np.float32))[None]
    condition = torch.cat([_resize(lung, size, "majority"), _resize(nodule, size, "any")]) * 2 - 1
    return Case(
        patient_id=patient_id,
        image=_resize(unit, size, "mean").clamp(-1, 1),
        condition=condition,
        hu=hu,
        labels=labels,
        affine=np.asarray(image.affine),
        path=image_path,
    )


def keep_mask(case: Case) -> torch.Tensor:
    """Voxels (model size) outside both lung and nodule: taken from the real CT when sampling."""
    return (case.condition <= 0).all(dim=0, keepdim=True)


def restore(sample: torch.Tensor, case: Case, window: tuple[float, float]) -> np.ndarray:
    """A sample at model size -> HU on the real grid; outside lung and nodule the real CT.

    Args:
        sample: ``(1, *size)`` or ``(*size)`` sample in [-1, 1].
        case: The real case it was conditioned on.
        window: The HU window of :func:`to_unit`.

    Returns:
        Float32 HU array of the real image's shape.
    """
    volume = sample.reshape(1, 1, *sample.shape[-3:]).float()
    if volume.shape[2:] != case.hu.shape:
        volume = F.interpolate(volume, size=case.hu.shape, mode="trilinear", align_corners=False)
    synthetic = to_hu(volume[0, 0].numpy(), window).astype(np.float32)
    inside = np.isin(case.labels, (LUNG, NODULE))
    return np.where(inside, synthetic, case.hu).astype(np.float32)


def write_nifti(volume: np.ndarray, case: Case, out: Path | str) -> Path:
    """Save ``volume`` with the real image's affine and header (float32)."""
    import nibabel as nib

    real = nib.load(str(case.path))
    header = real.header.copy()
    header.set_data_dtype(np.float32)
    header.set_slope_inter(1.0, 0.0)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(volume.astype(np.float32), case.affine, header), str(out))
    return out
