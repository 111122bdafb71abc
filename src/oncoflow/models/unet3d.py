"""A 3D U-Net noise predictor: residual blocks, timestep embedding, attention at coarse levels.

Input ``cat([x_t, condition])`` (``in_channels`` = 1 image + mask channels), output the
predicted noise (1 channel). Each resolution level has ``num_res_blocks`` residual blocks
(GroupNorm, SiLU, 3x3x3 convolutions, the timestep embedding added between the two
convolutions); levels listed in ``attention_levels`` (0 = full resolution) add multi-head
self-attention over all voxels after each block. Down-sampling is a stride-2 convolution,
up-sampling trilinear x2 then a convolution; skip connections concatenate. Output convolutions of
residual and attention branches start at zero, so an untrained block is the identity.

Spatial sizes must be divisible by ``2 ** (len(channel_mult) - 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from oncoflow.models.registry import register_model


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 1000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[cos(t w_k), sin(t w_k)]``, ``w_k = max_period^(-k / (dim/2))``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(embedding, (0, dim % 2))


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels)


def _zero(module: nn.Module) -> nn.Module:
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


class ResBlock(nn.Module):
    """Residual block with the timestep embedding added after the first convolution."""

    def __init__(
        self, channels: int, out: int, embed: int, groups: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.first = nn.Sequential(
            _norm(channels, groups), nn.SiLU(), nn.Conv3d(channels, out, 3, padding=1)
        )
        self.embed = nn.Sequential(nn.SiLU(), nn.Linear(embed, out))
        self.second = nn.Sequential(
            _norm(out, groups),
            nn.SiLU(),
            nn.Dropout(dropout),
            _zero(nn.Conv3d(out, out, 3, padding=1)),
        )
        self.skip = nn.Conv3d(channels, out, 1) if channels != out else nn.Identity()

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """``x + F(x, embedding)``."""
        h = self.first(x) + self.embed(embedding)[:, :, None, None, None]
        return self.skip(x) + self.second(h)


class Attention(nn.Module):
    """Multi-head self-attention over the voxels of a (coarse) feature map."""

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv3d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv3d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + proj(attention(norm(x)))``."""
        b, c, *spatial = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, -1).unbind(1)
        out = F.scaled_dot_product_attention(
            q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2)
        )
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, *spatial))


class UNet3D(nn.Module):
    """The noise predictor (module docstring).

    Args:
        in_channels: Image + condition channels (3: CT, lung mask, nodule mask).
        out_channels: Predicted noise channels.
        base_channels: Channels of the first level (production 64, CPU demo 8-16).
        channel_mult: Channel multiplier per level (its length = number of levels).
        num_res_blocks: Residual blocks per level.
        attention_levels: Levels (0 = full resolution) with self-attention.
        heads: Attention heads.
        groups: GroupNorm groups (reduced to a divisor of the channels).
        dropout: Dropout inside residual blocks.
        max_period: Of the timestep embedding.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        base_channels: int = 16,
        channel_mult: Sequence[int] = (1, 2, 4),
        num_res_blocks: int = 1,
        attention_levels: Sequence[int] = (2,),
        heads: int = 1,
        groups: int = 8,
        dropout: float = 0.0,
        max_period: float = 1000.0,
    ) -> None:
        super().__init__()
        self.base_channels = base_channels
        self.max_period = max_period
        self.levels = len(channel_mult)
        embed = 4 * base_channels
        self.time = nn.Sequential(
            nn.Linear(base_channels, embed), nn.SiLU(), nn.Linear(embed, embed)
        )
        self.stem = nn.Conv3d(in_channels, base_channels, 3, padding=1)
        self.down = nn.ModuleList()
        skips = [base_channels]
        channels = base_channels
        for level, mult in enumerate(channel_mult):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                out = base_channels * mult
                block = nn.ModuleList([ResBlock(channels, out, embed, groups, dropout)])
                if level in attention_levels:
                    block.append(Attention(out, heads, groups))
                blocks.append(block)
                channels = out
                skips.append(channels)
            down = None
            if level < self.levels - 1:
                down = nn.Conv3d(channels, channels, 3, stride=2, padding=1)
                skips.append(channels)
            self.down.append(nn.ModuleList([blocks, down] if down is not None else [blocks]))
        self.middle = nn.ModuleList(
            [
                ResBlock(channels, channels, embed, groups, dropout),
                Attention(channels, heads, groups),
                ResBlock(channels, channels, embed, groups, dropout),
            ]
        )
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                out = base_channels * mult
                block = nn.ModuleList(
                    [ResBlock(channels + skips.pop(), out, embed, groups, dropout)]
                )
                if level in attention_levels:
                    block.append(Attention(out, heads, groups))
                blocks.append(block)
                channels = out
            up = nn.Conv3d(channels, channels, 3, padding=1) if level > 0 else None
            self.up.append(nn.ModuleList([blocks, up] if up is not None else [blocks]))
        self.head = nn.Sequential(
            _norm(channels, groups),
            nn.SiLU(),
            _zero(nn.Conv3d(channels, out_channels, 3, padding=1)),
        )

    @staticmethod
    def _run(block: nn.ModuleList, h: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = block[0](h, embedding)
        return block[1](h) if len(block) > 1 else h

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predicted noise of ``x`` (image + condition channels) at step indices ``t``."""
        embedding = self.time(timestep_embedding(t, self.base_channels, self.max_period))
        h = self.stem(x)
        skips = [h]
        for stage in self.down:
            for block in stage[0]:
                h = self._run(block, h, embedding)
                skips.append(h)
            if len(stage) > 1:
                h = stage[1](h)
                skips.append(h)
        h = self.middle[0](h, embedding)
        h = self.middle[1](h)
        h = self.middle[2](h, embedding)
        for stage in self.up:
            for block in stage[0]:
                h = self._run(block, torch.cat([h, skips.pop()], dim=1), embedding)
            if len(stage) > 1:
                h = stage[1](
                    F.interpolate(h, scale_factor=2, mode="trilinear", align_corners=False)
                )
        return self.head(h)


@register_model
def unet3d(**cfg: object) -> nn.Module:
    """The DDPM's noise predictor (:class:`UNet3D`)."""
    return UNet3D(**cfg)  # type: ignore[arg-type]
