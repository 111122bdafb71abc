"""2D slice encoders: basic-block ResNets without downloaded weights, and the small conv encoder.

:func:`resnet_trunk` builds a ResNet (``resnet10`` = one basic block per stage, ``resnet18``,
``resnet34``; He et al. 2016) with the first convolution replaced by a ``in_channels`` 7x7 stride-2
convolution and the classifier removed: the output is the 512-d average-pooled feature. The
network is :class:`ResNet` below, not torchvision's: importing torchvision costs ~3 s per job
(it pulls in ``torch._dynamo``), and a training job needs only this one architecture. It has
torchvision's parameter names (so its ``state_dict`` files load) and builds its modules in
torchvision's order with the same initialisation, so a seed gives the same weights
(``tests/unit/test_deep_models.py`` checks both against torchvision). Weights
are random unless ``weights`` names a local ``state_dict`` file (e.g. ImageNet weights saved
beforehand; nothing is ever downloaded). For a 1-channel input the RGB ``conv1`` of such a file is
summed over its input channels.

:class:`ConvEncoder` is the MM-DLS slice encoder (two 3x3 convolutions, 32 and 64 channels, global
pooling, linear to ``dim``) with batch norm and a stride-2 second convolution added.

:class:`LesionPool` reads what lies *inside* a lesion mask: two full-resolution 3x3 convolutions
(of the slice and its mask),
then the mask-weighted mean and standard deviation of each feature channel (and of the input
itself) over the lesion pixels of all a patient's slices, projected to ``dim``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from oncoflow.errors import ModelError

RESNET_LAYERS: dict[str, list[int]] = {
    "resnet10": [1, 1, 1, 1],
    "resnet18": [2, 2, 2, 2],
    "resnet34": [3, 4, 6, 3],
}


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut.

    ``y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``; ``conv1`` has the block's stride.
    """

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, inplanes, H, W) -> (B, planes, H / stride, W / stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet of basic blocks (torchvision's layout and initialisation).

    7x7/2 conv, 3x3/2 max pool, four stages (64-512 channels, strides 1, 2, 2, 2), global average
    pool and a linear classifier (``num_classes``).

    Convolutions are initialised He-normal (fan-out, ReLU gain), batch norms to weight 1, bias 0.
    """

    def __init__(self, block: type[BasicBlock], layers: list[int], num_classes: int = 1000) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)

    def _make_layer(
        self, block: type[BasicBlock], planes: int, blocks: int, stride: int = 1
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, num_classes) (or the 512-d feature once ``fc`` is Identity)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet_trunk(
    name: str = "resnet18", in_channels: int = 1, weights: str | Path | None = None
) -> tuple[nn.Module, int]:
    """A ResNet trunk (no classifier) and its feature width (512).

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


class LesionPool(nn.Module):
    """Lesion-pooled slice-stack encoder: what the lesion holds, wherever it lies in the crop.

    With feature maps ``f_c`` (the input and ``width`` channels of two stride-1 3x3
    conv-BN-ReLU layers that read the slice and its mask, so that they can tell the lesion's rim
    from its inside) and the lesion mask ``m`` (fractional after resizing, 0..1) over the ``k``
    slices of one patient:

    ``mu_c = sum(m f_c) / sum(m)``, ``sd_c = sqrt(sum(m (f_c - mu_c)^2) / sum(m) + 1e-6)``,

    output ``Linear([mu, sd]) -> dim``. A global average pool over the whole crop (a ResNet
    trunk) mixes the lesion with whatever surrounds it; pooling under the mask gives the
    lesion's intensity and texture statistics directly (a learned first-order / local-texture
    radiomics of the ROI), which a small cohort can train.

    Args:
        width: Channels of the two convolutions.
        dim: Output width.
    """

    def __init__(self, width: int = 16, dim: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(2, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        self.project = nn.Linear(2 * (width + 1), dim)
        self.width = dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Slices (B, k, H, W) and their lesion masks (B, k, H, W) -> (B, dim)."""
        b, k, h, w = x.shape
        pair = torch.stack([x, mask.to(x.dtype)], 2).reshape(b * k, 2, h, w)
        maps = self.features(pair).reshape(b, k, -1, h, w)
        maps = torch.cat([x.unsqueeze(2), maps], 2)
        weight = mask.unsqueeze(2).to(maps.dtype)
        area = weight.sum((1, 3, 4)).clamp(min=1e-6)
        mean = (maps * weight).sum((1, 3, 4)) / area
        centred = maps - mean[:, None, :, None, None]
        sd = torch.sqrt((centred.square() * weight).sum((1, 3, 4)) / area + 1e-6)
        return self.project(torch.cat([mean, sd], 1))
