"""Lung + lesion 2D segmentation network of the MM-DLS method (NSCLC PET/CT).

A shared encoder (``depth`` stages of two 3x3 convolution / GroupNorm / ReLU blocks, channels
``width * 2**s``, 2x2 max-pooling between stages) feeds two small U-Net-like decoders, one for
the lung and one for the lesion, each with skip connections from the shared encoder and one
logit map at input resolution.

Each decoder starts with a branch-specific block at the bottleneck resolution (the coarsest
decoder resolution). There, and only there, the lesion branch attends to the lung branch by
true cross-attention: the lesion tokens are the query, the lung tokens the key and value
(``torch.nn.MultiheadAttention``, ``batch_first``), followed by a residual connection and
LayerNorm. (The original MM-DLS code passed the same features as query and key, which is
self-attention.) The lung branch does not see the lesion branch.

Input slices must have height and width divisible by ``2 ** (depth - 1)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from oncoflow.models.registry import register_model

_BRANCHES = ("lung", "lesion")


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        _norm(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        _norm(out_channels),
        nn.ReLU(inplace=True),
    )


class _Decoder(nn.Module):
    """Bottleneck block, then up-sampling stages with encoder skips, then a 1x1 logit head."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.bottleneck = _double_conv(channels[-1], channels[-1])
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(channels[s + 1], channels[s], 2, stride=2)
            for s in reversed(range(len(channels) - 1))
        )
        self.blocks = nn.ModuleList(
            _double_conv(2 * channels[s], channels[s]) for s in reversed(range(len(channels) - 1))
        )
        self.head = nn.Conv2d(channels[0], 1, 1)

    def decode(self, features: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """Decode the (attended) bottleneck features to logits, using skips from fine to coarse."""
        x = features
        for up, block, skip in zip(self.up, self.blocks, reversed(skips[:-1]), strict=True):
            x = block(torch.cat([up(x), skip], dim=1))
        return self.head(x)


class _CrossAttention(nn.Module):
    """``LayerNorm(query + MHA(query, context, context))`` over flattened spatial tokens."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm = nn.LayerNorm(channels)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Return the query map (B, C, h, w) updated with what it gathers from the context map."""
        batch, channels, height, width = query.shape
        q = query.flatten(2).transpose(1, 2)  # (B, h*w, C)
        kv = context.flatten(2).transpose(1, 2)
        attended, _ = self.attention(q, kv, kv, need_weights=False)
        out = self.norm(q + attended)
        return out.transpose(1, 2).reshape(batch, channels, height, width)


class LungLesionSegmentor(nn.Module):
    """Shared-encoder, two-decoder 2D segmentor; the lesion decoder cross-attends to the lung.

    Args:
        in_channels: Channels of the input slices (1 for CT or PET alone, 2 for stacked PET/CT).
        width: Channels of the first encoder stage; stage ``s`` has ``width * 2**s``.
        depth: Number of encoder stages (the bottleneck is ``2**(depth-1)`` times smaller).
        heads: Attention heads; must divide the bottleneck channels ``width * 2**(depth-1)``.

    Raises:
        ValueError: If a size is not positive or ``heads`` does not divide the bottleneck width.
    """

    def __init__(
        self, in_channels: int = 1, width: int = 16, depth: int = 3, heads: int = 4
    ) -> None:
        super().__init__()
        if min(in_channels, width, depth, heads) < 1:
            raise ValueError(
                f"in_channels, width, depth and heads must be >= 1, got "
                f"{in_channels}, {width}, {depth}, {heads}"
            )
        channels = [width * 2**s for s in range(depth)]
        if channels[-1] % heads:
            raise ValueError(f"heads={heads} does not divide the bottleneck width {channels[-1]}")
        self.in_channels = in_channels
        self.depth = depth
        self.channels = channels
        self.encoder = nn.ModuleList(
            _double_conv(in_channels if s == 0 else channels[s - 1], channels[s])
            for s in range(depth)
        )
        self.pool = nn.MaxPool2d(2)
        self.decoders = nn.ModuleDict({name: _Decoder(channels) for name in _BRANCHES})
        self.cross_attention = _CrossAttention(channels[-1], heads)

    @property
    def embedding_dim(self) -> int:
        """Length of the vector returned by :meth:`encode` (the bottleneck channels)."""
        return self.channels[-1]

    def _check(self, x: torch.Tensor) -> None:
        factor = 2 ** (self.depth - 1)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(
                f"height and width must be divisible by {factor}, got {tuple(x.shape[2:])}"
            )

    def _encode_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        self._check(x)
        skips = []
        for s, stage in enumerate(self.encoder):
            x = stage(x if s == 0 else self.pool(x))
            skips.append(x)
        return skips

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Slice embedding: the globally average-pooled bottleneck of the shared encoder.

        Args:
            x: Slices (B, in_channels, H, W).

        Returns:
            Tensor (B, C) with ``C = width * 2**(depth-1)``.
        """
        return self._encode_all(x)[-1].mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Segment lung and lesion.

        Args:
            x: Slices (B, in_channels, H, W), H and W divisible by ``2**(depth-1)``.

        Returns:
            ``{"lung": (B, 1, H, W) logits, "lesion": (B, 1, H, W) logits, "features": the
            shared bottleneck (B, C, H / 2**(depth-1), W / 2**(depth-1))}``.
        """
        skips = self._encode_all(x)
        bottleneck = skips[-1]
        lung = self.decoders["lung"].bottleneck(bottleneck)
        lesion = self.decoders["lesion"].bottleneck(bottleneck)
        lesion = self.cross_attention(lesion, lung)
        return {
            "lung": self.decoders["lung"].decode(lung, skips),
            "lesion": self.decoders["lesion"].decode(lesion, skips),
            "features": bottleneck,
        }


@register_model
def lung_lesion_segmentor(in_channels: int = 1, **cfg: int) -> nn.Module:
    """The MM-DLS lung + lesion segmentor (:class:`LungLesionSegmentor`)."""
    return LungLesionSegmentor(in_channels, **cfg)


def _flat(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if logits.shape != target.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in shape"
        )
    return logits.flatten(1), target.flatten(1).to(logits.dtype)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss ``1 - mean_b dice_b`` on sigmoid probabilities, Dice computed per sample.

    Args:
        logits: Logits (B, ...).
        target: Binary (or soft) masks of the same shape.
        smooth: Added to numerator and denominator (an empty target with an empty prediction
            scores Dice 1).

    Returns:
        Scalar loss in [0, 1].
    """
    logits, target = _flat(logits, target)
    probs = torch.sigmoid(logits)
    intersection = (probs * target).sum(dim=1)
    dice = (2 * intersection + smooth) / (probs.sum(dim=1) + target.sum(dim=1) + smooth)
    return 1 - dice.mean()


def dice_score(logits: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Hard Dice per sample, prediction ``sigmoid(logits) > threshold``, target ``> 0.5``.

    Args:
        logits: Logits (B, ...).
        target: Masks of the same shape.
        threshold: Probability threshold of the prediction.

    Returns:
        Tensor (B,) of Dice coefficients; 1.0 where prediction and target are both empty.
    """
    logits, target = _flat(logits, target)
    pred = torch.sigmoid(logits.detach()) > threshold
    truth = target.detach() > 0.5
    intersection = (pred & truth).sum(dim=1).float()
    total = (pred.sum(dim=1) + truth.sum(dim=1)).float()
    return torch.where(total > 0, 2 * intersection / total.clamp_min(1), torch.ones_like(total))


def segmentation_loss(
    outputs: dict[str, torch.Tensor], lung: torch.Tensor, lesion: torch.Tensor
) -> torch.Tensor:
    """Soft Dice + BCE-with-logits of the lung branch plus the same of the lesion branch.

    Args:
        outputs: The dict returned by :meth:`LungLesionSegmentor.forward`.
        lung: Lung masks (B, 1, H, W).
        lesion: Lesion masks (B, 1, H, W).

    Returns:
        Scalar loss.
    """
    total = outputs["lung"].new_zeros(())
    for name, target in (("lung", lung), ("lesion", lesion)):
        logits = outputs[name]
        total = total + soft_dice_loss(logits, target)
        total = total + F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
    return total
