"""Segmentation + classification in one encoder pass (seed 001, fixed).

:class:`MultitaskNetwork` wraps an nnU-Net encoder-decoder (``network.encoder`` returns the skip
features, ``network.decoder`` turns them into segmentation logits) and adds a classification head
on the bottleneck, the last skip. One ``forward_both`` call runs the encoder once and returns both
outputs; the seed ran the encoder a second time for the head.

``forward`` returns only the segmentation (so nnU-Net's trainer and sliding-window predictor work
unchanged) and, inside :meth:`MultitaskNetwork.collecting`, records the head's softmax for every
patch it sees. The case-level class is the mean of those softmax vectors over all sliding-window
patches (and mirrored test-time variants, and folds of an ensemble), not the logits of whichever
patch ran last, which is what the seed's inference read.

Schedules (epoch ``e``, warm-up ``E_w`` epochs, ramp ``E_r`` epochs):

- loss = seg + ``w_cls(e)`` * CE_weighted, ``w_cls(e) = 0`` for ``e < E_w`` else ``w``
  (segmentation-only warm-up, then a fixed weight: the seed's phase-1 weight was a no-op);
- checkpoint selection on ``s(e) = a(e) * Dice + (1 - a(e)) * macro-F1`` with
  ``a(e) = 0.9`` for ``e < E_w``, then linear to 0.5 over ``E_r`` epochs;
- class weights ``w_c = N / (K * max(n_c, 1))`` (inverse frequency, mean 1 over classes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn


class ClassificationHead(nn.Module):
    """Pooling -> LayerNorm -> Linear -> ReLU -> Dropout -> Linear (n classes).

    ``pooling="mean"``: global average of the bottleneck (seed 001). ``pooling="roi"``: the global
    average concatenated with the average weighted by the network's own (detached) probability of
    the innermost region, resampled to the bottleneck grid,

        f_roi = sum_v p_v f_v / (sum_v p_v + eps),

    so a small lesion is not drowned in the average over the whole patch (the seed's notes suggest
    classifying from the lesion's region rather than the whole patch).

    ``normalized``: the LayerNorm covers the first ``normalized`` input features only (all by
    default); the others pass to the MLP as they are. A refit head uses it for inputs already
    standardised on the training cases (z-scored lesion statistics): a per-case LayerNorm over
    them would mix them with the descriptor's scale, and over three numbers alone it would keep
    one degree of freedom of three.
    """

    def __init__(
        self,
        channels: int,
        n_classes: int,
        hidden: int = 128,
        dropout: float = 0.3,
        pooling: str = "mean",
        normalized: int | None = None,
    ):
        super().__init__()
        if pooling not in ("mean", "roi"):
            msg = f"unknown head pooling {pooling!r} (mean or roi)"
            raise ValueError(msg)
        self.pooling = pooling
        channels = channels * (2 if pooling == "roi" else 1)
        self.normalized = channels if normalized is None else int(normalized)
        if not 0 <= self.normalized <= channels:
            msg = f"the head normalises {self.normalized} of its {channels} input features"
            raise ValueError(msg)
        self.norm = nn.LayerNorm(self.normalized) if self.normalized else nn.Identity()
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    def pool(self, features: torch.Tensor, roi: torch.Tensor | None = None) -> torch.Tensor:
        """The head's input ``(batch, C)`` or ``(batch, 2C)``: pooled bottleneck features.

        Args:
            features: Bottleneck features ``(batch, C, *spatial)``.
            roi: Region probability ``(batch, 1, *spatial)`` on the bottleneck grid (``roi``
                pooling only).
        """
        pooled = features.flatten(2).mean(dim=2)
        if self.pooling == "roi":
            if roi is None:
                msg = "roi pooling needs the region probability"
                raise ValueError(msg)
            weight = roi.flatten(2)
            weighted = (features.flatten(2) * weight).sum(dim=2) / (weight.sum(dim=2) + 1e-6)
            pooled = torch.cat([pooled, weighted], dim=1)
        return pooled

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_classes)`` of pooled features (:meth:`pool`)."""
        if self.normalized == pooled.shape[1]:
            return self.mlp(self.norm(pooled))
        n = self.normalized
        return self.mlp(torch.cat([self.norm(pooled[:, :n]), pooled[:, n:]], dim=1))

    def forward(self, features: torch.Tensor, roi: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(batch, n_classes)`` of bottleneck features ``(batch, C, *spatial)``."""
        return self.classify(self.pool(features, roi))


class MultitaskNetwork(nn.Module):
    """An nnU-Net encoder-decoder with a classification head on its bottleneck.

    Args:
        base: Network with ``encoder`` (returning the list of skips) and ``decoder``.
        n_classes: Number of classes of the head.
        hidden: Hidden width of the head's MLP.
        dropout: Dropout of the head.
        pooling: ``mean`` or ``roi`` (:class:`ClassificationHead`).
        sigmoid: The segmentation outputs are region sigmoids (nnU-Net region training); else
            softmax over classes. The last output channel is the ROI of ``roi`` pooling.
    """

    def __init__(
        self,
        base: nn.Module,
        n_classes: int,
        hidden: int = 128,
        dropout: float = 0.3,
        pooling: str = "mean",
        sigmoid: bool = True,
    ):
        super().__init__()
        self.base = base
        channels = int(_bottleneck_channels(base))
        self.head = ClassificationHead(channels, n_classes, hidden, dropout, pooling)
        self.sigmoid = sigmoid
        self.encoder_calls = 0
        self._collected: list[torch.Tensor] | None = None
        self._pooled: list[torch.Tensor] | None = None
        self._contrast = False

    @property
    def encoder(self) -> nn.Module:
        """The shared encoder (returns the skip features; the last one is the bottleneck)."""
        return self.base.encoder

    @property
    def decoder(self) -> nn.Module:
        """The segmentation decoder (nnU-Net toggles ``decoder.deep_supervision`` on it)."""
        return self.base.decoder

    def forward_both(
        self, x: torch.Tensor, target: torch.Tensor | Sequence[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor]:
        """Segmentation logits (a list with deep supervision) and class logits, one encoder pass.

        Args:
            x: Input patches ``(batch, channels, *spatial)``.
            target: The patches' ground-truth segmentation (nnU-Net's training target, a list
                with deep supervision): with ``roi`` pooling the head then pools over the true
                innermost region instead of the network's own probability of it (teacher
                forcing: the head learns the lesion's class before the segmentation finds it).
        """
        skips = self.base.encoder(x)
        self.encoder_calls += 1
        segmentation = self.base.decoder(skips)
        full = segmentation[0] if isinstance(segmentation, list | tuple) else segmentation
        predicted = None
        if self.head.pooling == "roi" or self._pooled is not None:
            logits = full.detach()[:, -1:] if self.sigmoid else full.detach()
            predicted = torch.sigmoid(logits) if self.sigmoid else torch.softmax(logits, 1)[:, -1:]
        if self._pooled is not None:
            surround = self.surround_probability(full, predicted) if self._contrast else None
            self._pooled.append(lesion_descriptor(skips, predicted, surround).float().cpu())
        roi = None
        if self.head.pooling == "roi":
            prob = predicted if target is None else self.innermost_region(target, full.shape[1])
            roi = nn.functional.interpolate(prob, size=skips[-1].shape[2:], mode="area")
        return segmentation, self.head(skips[-1], roi)

    def surround_probability(self, full: torch.Tensor, lesion: torch.Tensor) -> torch.Tensor | None:
        """Probability of the tissue around the lesion: the organ without the lesion.

        Region training (sigmoid outputs, outermost region first): ``max(p_outer - p_lesion, 0)``;
        label training (softmax): the summed probability of the labels between background and
        the lesion. ``None`` when the network segments one structure only.
        """
        logits = full.detach()
        if logits.shape[1] < 2 or (not self.sigmoid and logits.shape[1] < 3):
            return None
        if self.sigmoid:
            return (torch.sigmoid(logits[:, :1]) - lesion).clamp_min(0)
        return torch.softmax(logits, 1)[:, 1:-1].sum(dim=1, keepdim=True)

    def innermost_region(
        self, target: torch.Tensor | Sequence[torch.Tensor], n_outputs: int
    ) -> torch.Tensor:
        """The innermost region (the lesion) of a training target as a ``(batch, 1, ...)`` mask.

        Region training (sigmoid outputs): the target's last channel; label training (softmax
        over ``n_outputs`` classes): voxels of the last label. Voxels nnU-Net ignores (negative
        values) count as outside.
        """
        full = target[0] if isinstance(target, list | tuple) else target
        full = full.detach()
        if self.sigmoid:
            return (full[:, -1:] > 0).float()
        return (full[:, :1] == n_outputs - 1).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """Segmentation only; the head's softmax is recorded inside :meth:`collecting`."""
        segmentation, logits = self.forward_both(x)
        if self._collected is not None:
            self._collected.append(torch.softmax(logits.detach().float(), dim=1).cpu())
        return segmentation

    @contextlib.contextmanager
    def collecting(self) -> Iterator[list[torch.Tensor]]:
        """Record the class softmax of every patch forwarded in the block (a tensor per call)."""
        self._collected = []
        try:
            yield self._collected
        finally:
            self._collected = None

    @contextlib.contextmanager
    def collecting_features(self, contrast: bool = False) -> Iterator[list[torch.Tensor]]:
        """Record the :func:`lesion_descriptor` of every patch forwarded in the block.

        ``contrast``: with the lesion's contrast to the surrounding organ as a fourth part per
        stage (measured on leave-one-site-out validation, ``benchmarks/head_descriptor.py``: no
        gain, so the refit head reads the three parts).
        """
        self._pooled, self._contrast = [], contrast
        try:
            yield self._pooled
        finally:
            self._pooled, self._contrast = None, False


def lesion_descriptor(
    skips: Sequence[torch.Tensor], prob: torch.Tensor, surround: torch.Tensor | None = None
) -> torch.Tensor:
    """Multi-scale description of the predicted lesion: ``(batch, P * sum_s C_s)``.

    For every encoder stage ``s`` (features ``f`` with ``C_s`` channels) and the network's own
    lesion probability ``p`` resampled to that stage's grid (area averaging): the global mean of
    ``f``, its lesion-weighted mean ``m = sum_v p_v f_v / (sum_v p_v + eps)`` and its
    lesion-weighted standard deviation ``sqrt(sum_v p_v (f_v - m)^2 / (sum_v p_v + eps))``
    (``P = 3``). The fine stages keep the lesion's texture and edge, which the bottleneck (1/8 of
    the input resolution on the demo) has averaged away; the SD is the heterogeneity a
    radiologist reads. With ``surround`` (the probability of the organ around the lesion,
    :meth:`MultitaskNetwork.surround_probability`) a fourth part, the contrast ``m - m_s`` with
    ``m_s`` the surround-weighted mean (``P = 4``): at the finest stage, nearly linear in the
    intensities, a scanner's calibration offset cancels in it.

    Args:
        skips: Encoder outputs, finest first, each ``(batch, C_s, *spatial_s)``.
        prob: Lesion probability ``(batch, 1, *spatial)`` at the input resolution.
        surround: Surrounding-organ probability, same shape, or ``None``.
    """

    def weighted_mean(flat: torch.Tensor, p: torch.Tensor, size) -> tuple[torch.Tensor, ...]:
        weight = nn.functional.interpolate(p, size=size, mode="area").flatten(2)
        total = weight.sum(dim=2) + 1e-6
        return (flat * weight).sum(dim=2) / total, weight, total

    parts = []
    for features in skips:
        flat = features.detach().flatten(2)
        mean, weight, total = weighted_mean(flat, prob, features.shape[2:])
        spread = ((flat - mean[..., None]) ** 2 * weight).sum(dim=2) / total
        parts += [flat.mean(dim=2), mean, spread.clamp_min(0).sqrt()]
        if surround is not None:
            parts.append(mean - weighted_mean(flat, surround, features.shape[2:])[0])
    return torch.cat(parts, dim=1)


def _bottleneck_channels(base: nn.Module) -> int:
    encoder = base.encoder
    channels = getattr(encoder, "output_channels", None)
    if channels is None:
        msg = f"{type(encoder).__name__} does not expose output_channels; cannot size the head"
        raise TypeError(msg)
    return int(channels[-1])


def aggregate_patches(patch_probabilities: Sequence[torch.Tensor]) -> np.ndarray:
    """Case-level class probabilities: the mean softmax over every patch of a case.

    Args:
        patch_probabilities: Softmax tensors ``(batch, n_classes)`` recorded per forward call.

    Returns:
        ``(n_classes,)`` probabilities summing to 1.

    Raises:
        ValueError: No patch was recorded.
    """
    if not patch_probabilities:
        msg = "no patch was forwarded: nothing to aggregate"
        raise ValueError(msg)
    stacked = torch.cat([p.reshape(-1, p.shape[-1]) for p in patch_probabilities]).double()
    mean = stacked.mean(dim=0).numpy()
    return mean / mean.sum()


def classification_weight(epoch: int, warmup: int, weight: float) -> float:
    """Weight of the classification loss: 0 during the warm-up, ``weight`` after."""
    return 0.0 if epoch < warmup else float(weight)


def selection_dice_weight(
    epoch: int, warmup: int, ramp: int, start: float = 0.9, end: float = 0.5
) -> float:
    """Weight ``a(e)`` of Dice in the checkpoint-selection score (``1 - a`` goes to macro-F1)."""
    if epoch < warmup:
        return start
    if ramp <= 0:
        return end
    progress = min(1.0, (epoch - warmup) / ramp)
    return start + (end - start) * progress


def class_weights(counts: Sequence[int]) -> np.ndarray:
    """Inverse-frequency class weights ``N / (K * max(n_c, 1))`` (mean 1 for balanced data)."""
    n = np.asarray(counts, dtype=float)
    return n.sum() / (len(n) * np.maximum(n, 1.0))
