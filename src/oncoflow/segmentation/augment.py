"""Training augmentations nnU-Net lacks: the calibration, blur and noise of another CT scanner.

Two CT scanners need not read the same tissue as the same HU: calibration, beam hardening and
contrast timing move every value by an offset that differs per site. nnU-Net normalises a CT
channel with the dataset's foreground statistics, ``x_n = (clip(x) - mu_fg) / sigma_fg``, so a
scanner offset of ``delta`` HU reaches the network as ``delta / sigma_fg``; nnU-Net's own intensity
augmentations (multiplicative brightness and contrast around the patch mean, gamma, noise) leave
that offset unseen. :class:`CalibrationShiftTransform` adds to every training sample an offset
drawn from ``U(-a, a)`` HU per CT channel, so a network cannot rely on absolute attenuation where
the contrast between structures says the same. Off unless the trainer's schedule sets
``intensity_shift_hu``.

A scanner also differs in resolution and noise: a wider point-spread function smooths the
texture, a lower dose adds noise. nnU-Net blurs 20 % of samples by ``sigma`` of 0.5-1 voxel and
adds noise to 10 % (SD up to ~0.3 normalised units). :class:`ScannerDegradationTransform` makes a
sample look as if read by a blurrier, noisier scanner with probability ``p`` each: Gaussian blur
with ``sigma ~ U(0, b)`` mm (``sigma / spacing`` voxels per axis) and white noise of SD
``s ~ U(0, n)`` HU (``s / sigma_fg`` normalised units), on CT channels only. Off unless the
schedule sets ``scanner_blur_mm`` or ``scanner_noise_hu``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import ImageOnlyTransform

CT_SCHEME = "CTNormalization"
"""nnU-Net's normalisation scheme of CT channels (HU with dataset-wide foreground statistics)."""


def _ct_std(channel: int, intensity_properties: Mapping[str, Mapping[str, Any]]) -> float:
    std = float(intensity_properties.get(str(channel), {}).get("std", 0.0))
    if std <= 0:
        msg = f"CT channel {channel}: the plans give no foreground intensity std"
        raise ValueError(msg)
    return std


def hu_in_normalised_units(
    value_hu: float,
    setting: str,
    schemes: Sequence[str],
    intensity_properties: Mapping[str, Mapping[str, Any]],
) -> list[float]:
    """An amount in HU per channel in nnU-Net's normalised units: ``v / sigma_fg`` for CT, else 0.

    Used for the half-width ``a`` of the scanner offset (``intensity_shift_hu``) and the largest
    noise SD ``n`` (``scanner_noise_hu``): a CT channel is normalised as
    ``(clip(x) - mu_fg) / sigma_fg``, so ``v`` HU become ``v / sigma_fg``.

    Args:
        value_hu: The amount ``v`` in HU (``>= 0``).
        setting: Name of the trainer setting it comes from (for the error message).
        schemes: nnU-Net's normalisation scheme per channel
            (``configuration.normalization_schemes``).
        intensity_properties: The plans' ``foreground_intensity_properties_per_channel``
            (``{"0": {"std": sigma_fg, ...}, ...}``, HU for CT channels).

    Returns:
        One value per channel in normalised units (0 for channels that are not CT, or ``v = 0``).

    Raises:
        ValueError: A negative ``value_hu`` or a CT channel without a positive ``std``.
    """
    if value_hu < 0:
        msg = f"{setting} must be >= 0 HU, got {value_hu}"
        raise ValueError(msg)
    return [
        float(value_hu) / _ct_std(c, intensity_properties) if s == CT_SCHEME and value_hu else 0.0
        for c, s in enumerate(schemes)
    ]


class CalibrationShiftTransform(ImageOnlyTransform):
    """Add ``U(-w_c, w_c)`` to channel ``c`` of a sample (one scanner offset per channel).

    Args:
        half_widths: ``w_c`` per channel in normalised units
            (:func:`hu_in_normalised_units`); channels with 0 are left unchanged.
    """

    def __init__(self, half_widths: Sequence[float]):
        super().__init__()
        self.half_widths = torch.as_tensor(list(half_widths), dtype=torch.float32)

    def get_parameters(self, **data_dict: Any) -> dict[str, torch.Tensor]:
        """One offset per channel, ``(2 u - 1) w_c`` with ``u ~ U(0, 1)``."""
        channels = data_dict["image"].shape[0]
        if channels != len(self.half_widths):
            msg = f"image has {channels} channel(s), the transform {len(self.half_widths)}"
            raise ValueError(msg)
        return {"shift": (torch.rand(channels) * 2 - 1) * self.half_widths}

    def _apply_to_image(self, img: torch.Tensor, **params: Any) -> torch.Tensor:
        for channel, shift in enumerate(params["shift"]):
            if self.half_widths[channel] > 0:
                img[channel].add_(shift)
        return img


class ScannerDegradationTransform(ImageOnlyTransform):
    """Blur and noise of a blurrier, noisier scanner on the CT channels of a sample.

    Args:
        blur_mm: Largest Gaussian blur ``b`` (SD, mm); 0: no blur.
        spacing: Voxel spacing of the patch (mm per axis, the configuration's spacing).
        noise: Largest noise SD per channel in normalised units (:func:`hu_in_normalised_units`).
        ct_channels: Whether each channel is CT (only those are blurred and noised).
        probability: Chance ``p`` of each of the two degradations per sample.
    """

    def __init__(
        self,
        blur_mm: float,
        spacing: Sequence[float],
        noise: Sequence[float],
        ct_channels: Sequence[bool],
        probability: float = 0.5,
    ):
        super().__init__()
        if blur_mm < 0 or not 0 <= probability <= 1:
            msg = f"scanner_blur_mm must be >= 0 and p in [0, 1], got {blur_mm}, {probability}"
            raise ValueError(msg)
        self.blur_mm = float(blur_mm)
        self.spacing = np.asarray(list(spacing), dtype=float)
        self.noise = list(noise)
        self.ct_channels = list(ct_channels)
        self.probability = float(probability)

    def get_parameters(self, **data_dict: Any) -> dict[str, Any]:
        """Blur SD (mm, 0 = none) and noise SD per channel (normalised, 0 = none)."""
        channels = data_dict["image"].shape[0]
        if channels != len(self.ct_channels):
            msg = f"image has {channels} channel(s), the transform {len(self.ct_channels)}"
            raise ValueError(msg)
        blur = 0.0
        if self.blur_mm > 0 and torch.rand(1).item() < self.probability:
            blur = torch.rand(1).item() * self.blur_mm
        noise = [0.0] * channels
        if any(self.noise) and torch.rand(1).item() < self.probability:
            u = torch.rand(1).item()
            noise = [u * w for w in self.noise]
        return {"blur_mm": blur, "noise_sd": noise}

    def _apply_to_image(self, img: torch.Tensor, **params: Any) -> torch.Tensor:
        from scipy.ndimage import gaussian_filter

        sigma = params["blur_mm"] / self.spacing[-(img.ndim - 1) :]
        for channel, is_ct in enumerate(self.ct_channels):
            if not is_ct:
                continue
            if params["blur_mm"] > 0:
                blurred = gaussian_filter(img[channel].numpy(), sigma, mode="nearest")
                img[channel] = torch.from_numpy(blurred)
            if params["noise_sd"][channel] > 0:
                img[channel].add_(torch.randn_like(img[channel]) * params["noise_sd"][channel])
        return img
