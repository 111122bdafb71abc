"""A training augmentation nnU-Net lacks: the calibration offset of another CT scanner.

Two CT scanners need not read the same tissue as the same HU: calibration, beam hardening and
contrast timing move every value by an offset that differs per site. nnU-Net normalises a CT
channel with the dataset's foreground statistics, ``x_n = (clip(x) - mu_fg) / sigma_fg``, so a
scanner offset of ``delta`` HU reaches the network as ``delta / sigma_fg``; nnU-Net's own intensity
augmentations (multiplicative brightness and contrast around the patch mean, gamma, noise) leave
that offset unseen. :class:`CalibrationShiftTransform` adds to every training sample an offset
drawn from ``U(-a, a)`` HU per CT channel, so a network cannot rely on absolute attenuation where
the contrast between structures says the same. Off unless the trainer's schedule sets
``intensity_shift_hu``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from batchgeneratorsv2.transforms.base.basic_transform import ImageOnlyTransform

CT_SCHEME = "CTNormalization"
"""nnU-Net's normalisation scheme of CT channels (HU with dataset-wide foreground statistics)."""


def calibration_half_widths(
    shift_hu: float,
    schemes: Sequence[str],
    intensity_properties: Mapping[str, Mapping[str, Any]],
) -> list[float]:
    """Half-width of the normalised offset per channel: ``a / sigma_fg`` for CT channels, else 0.

    Args:
        shift_hu: Half-width ``a`` of the uniform scanner offset, HU.
        schemes: nnU-Net's normalisation scheme per channel
            (``configuration.normalization_schemes``).
        intensity_properties: The plans' ``foreground_intensity_properties_per_channel``
            (``{"0": {"std": sigma_fg, ...}, ...}``, HU for CT channels).

    Returns:
        One half-width per channel in normalised units (0 for channels that are not CT).

    Raises:
        ValueError: A negative ``shift_hu`` or a CT channel without a positive ``std``.
    """
    if shift_hu < 0:
        msg = f"intensity_shift_hu must be >= 0 HU, got {shift_hu}"
        raise ValueError(msg)
    widths = []
    for channel, scheme in enumerate(schemes):
        if scheme != CT_SCHEME or shift_hu == 0:
            widths.append(0.0)
            continue
        std = float(intensity_properties.get(str(channel), {}).get("std", 0.0))
        if std <= 0:
            msg = f"CT channel {channel}: the plans give no foreground intensity std"
            raise ValueError(msg)
        widths.append(float(shift_hu) / std)
    return widths


class CalibrationShiftTransform(ImageOnlyTransform):
    """Add ``U(-w_c, w_c)`` to channel ``c`` of a sample (one scanner offset per channel).

    Args:
        half_widths: ``w_c`` per channel in normalised units
            (:func:`calibration_half_widths`); channels with 0 are left unchanged.
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
