"""2D slice encoders: torchvision ResNets without downloaded weights, and the small conv encoder.

:func:`resnet_trunk` builds a torchvision ResNet (``resnet10`` = one basic block per stage,
``resnet18``, ``resnet34``) with the first convolution replaced by a ``in_channels`` 7x7 stride-2
convolution and the classifier removed: the output is the 512-d average-pooled feature. Weights
are random unless ``weights`` names a local ``state_dict`` file (e.g. ImageNet weights saved
beforehand; nothing is ever downloaded). For a 1-channel input the RGB ``conv1`` of such a file is
summed over its input channels.

:class:`ConvEncoder` is the MM-DLS slice encoder (two 3x3 convolutions, 32 and 64 channels, global
pooling, linear to ``dim``) with batch norm and a stride-2 second convolution added.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from oncoflow.errors import ModelError

RESNET_LAYERS: dict[str, list[int]] = {
    "resnet10": [1, 1, 1, 1],
    "resnet18": [2, 2, 2, 2],
    "resnet34": [3, 4, 6, 3],
}


def resnet_trunk(
    name: str = "resnet18", in_channels: int = 1, weights: str | Path | None = None
) -> tuple[nn.Module, int]:
    """A torchvision ResNet trunk (no classifier) and its feature width (512).

    Raises:
        ModelError: Unknown ``name`` or an unreadable / mismatching weights file.
    """
    if name not in RESNET_LAYERS:
        msg = f"unknown backbone {name!r}; choose one of {', '.join(RESNET_LAYERS)}"
        raise ModelError(msg)
    net = ResNet(BasicBlock, RESNET_LAYERS[name])
    if weights is not None:
        try:
            state = torch.load(Path(weights), map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as exc:
            msg = f"{weights}: cannot read backbone weights ({exc})"
            raise ModelError(msg) from exc
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing = net.load_state_dict(state, strict=False).missing_keys
        if [k for k in missing if not k.startswith("fc.")]:
            msg = f"{weights}: not {name} weights (missing {missing[:3]}...)"
            raise ModelError(msg)
    rgb = net.conv1.weight.data
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    if weights is not None:
        net.conv1.weight.data = rgb.sum(1, keepdim=True).repeat(1, in_channels, 1, 1) / in_channels
    net.fc = nn.Identity()
    return net, 512


class ConvEncoder(nn.Module):
    """Small slice encoder: conv(32)-BN-ReLU, conv(64, stride 2)-BN-ReLU, pool, linear -> dim."""

    def __init__(self, in_channels: int = 1, dim: int = 128) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.project = nn.Sequential(nn.Linear(64, dim), nn.ReLU(inplace=True))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, dim)."""
        return self.project(self.features(x))
