"""liver_response: the five rungs of the relation-network ablation ladder (seed 003, rebuilt).

Every rung reads per patient a tensor ``(Q, 2, k, 2, H, W)``: ``Q`` MRI sequences x (pre, post) x
``k`` lesion slices (largest areas first) x (image, lesion mask) and a tabular vector (blood
markers AFP / DCP before and after, lesion volume before and after and, with the trainer's
``lesion_means``, the mean lesion-core intensity of each sequence the rung reads before and
after; encoded with training-fold statistics). The slice encoder (``encoder``) maps the ``k``
slices of one sequence and time point to one patient-level vector of width ``f`` (``dim``):

* ``resnet`` (the seed's): a ResNet trunk (1 channel, the image) maps each slice to 512
  features, averaged over the ``k`` slices (slice aggregation, which the seed never did) and
  projected to ``f``; the mask is not read;
* ``lesion_pool``: :class:`~oncoflow.models.backbones.LesionPool`, the mask-weighted mean and SD
  of full-resolution convolution features over the lesion pixels of the ``k`` slices.

Each rung adds one factor to the rung below it, so that a paired difference between two
neighbours measures that factor alone:

1. :class:`SingleSequenceBaseline` (``resnet_single``): one sequence, pre-treatment, image only.
2. :class:`SingleSequencePrePost` (``pre_post``): + the post-treatment image of the same sequence
   (``[f_pre, f_post]`` from a shared encoder), still image only.
3. :class:`SingleSequenceTemporal` (``single_temporal``): + the tabular vector (AFP / DCP and
   lesion volumes).
4. :class:`MultiSequenceFusion` (``multi_sequence``): + the other sequences: one encoder *per
   sequence* (each branch gets its own sequence; the seed fed the same image to both branches),
   ``[f_pre, f_post]`` of every sequence concatenated + tabular.
5. :class:`RelationNet` (``relation_net``): + the relation module; per sequence ``q`` with features
   ``a = f_pre``, ``b = f_post`` (``dim``): relation ``r_q = [b - a, a * b, cos(a, b)]``
   (difference, product and cosine similarity), temporal trajectory embedding
   ``u_q = MLP([a, b, b - a])``; sequence weights ``w = softmax_q(v^T tanh(W [r_q, u_q]))``;
   patient vector ``sum_q w_q [r_q, u_q]`` + tabular -> head.

All heads output 2 logits, the rungs with a tabular vector adding a linear term of it
(``logits = MLP([image, t]) + W t``); the score is ``softmax[:, 1]``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from oncoflow.errors import ModelError
from oncoflow.models.backbones import LesionPool, resnet_trunk
from oncoflow.models.registry import register_model

RUNGS: tuple[str, ...] = (
    "resnet_single",
    "pre_post",
    "single_temporal",
    "multi_sequence",
    "relation_net",
)
"""The ablation ladder, simplest first; each rung adds one factor."""

SINGLE_SEQUENCE: tuple[str, ...] = ("resnet_single", "pre_post", "single_temporal")
"""The rungs that read one sequence (their ``sequence``); the others read every sequence."""


def _head(width: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(width, hidden),
        nn.ELU(),
        nn.Linear(hidden, 2),
    )


ENCODERS: tuple[str, ...] = ("resnet", "lesion_pool")
"""Slice encoders of the rungs (module docstring)."""


class _SliceMean(nn.Module):
    """Encode (B, k, 2, H, W) slices + masks into (B, dim) (``encoder``: module docstring)."""

    def __init__(
        self, backbone: str, weights: str | None, dim: int, encoder: str, width: int
    ) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            msg = f"unknown liver slice encoder {encoder!r}; choose one of {', '.join(ENCODERS)}"
            raise ModelError(msg)
        self.pool = LesionPool(width, dim) if encoder == "lesion_pool" else None
        if self.pool is None:
            self.trunk, features = resnet_trunk(backbone, 1, weights)
            self.project = nn.Linear(features, dim)
        self.width = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images, masks = x[:, :, 0], x[:, :, 1]
        if self.pool is not None:
            return self.pool(images, masks)
        b, k, h, w = images.shape
        features = self.trunk(images.reshape(b * k, 1, h, w)).reshape(b, k, -1)
        return self.project(features.mean(1))


class _Rung(nn.Module):
    """Settings every rung takes by keyword (a config ``network`` block serves all four).

    Args:
        tabular_dim: Width ``p`` of the tabular vector (0 for the image-only rung).
        n_sequences: ``Q``, the MRI sequences (one encoder each in rungs 3 and 4).
        sequence: Index of the sequence the single-sequence rungs read.
        timepoint: Time point of rung 1 (0 = before treatment).
        encoder: Slice encoder, one of :data:`ENCODERS` (module docstring).
        backbone: ResNet trunk of the ``resnet`` encoder (:func:`~.backbones.resnet_trunk`).
        width: Convolution channels of the ``lesion_pool`` encoder.
        dim: ``f``, the width of a patient-level slice vector.
        hidden: Width of the head's hidden layer.
        dropout: Dropout before the head.
        weights: Local file of trunk weights, or ``None``.
        **_: Settings of other rungs, ignored.
    """

    def __init__(
        self,
        *,
        tabular_dim: int = 0,
        n_sequences: int = 3,
        sequence: int = 0,
        timepoint: int = 0,
        encoder: str = "resnet",
        backbone: str = "resnet18",
        width: int = 16,
        dim: int = 32,
        hidden: int = 32,
        dropout: float = 0.5,
        weights: str | None = None,
        **_: object,
    ) -> None:
        super().__init__()
        self.tabular_dim, self.n_sequences = tabular_dim, n_sequences
        self.sequence, self.timepoint = sequence, timepoint
        self._encoder_args, self.dim = (backbone, weights, dim, encoder, width), dim
        self._head_args = (hidden, dropout)

    def slice_encoder(self) -> _SliceMean:
        """A new slice encoder (:class:`_SliceMean`) of these settings."""
        return _SliceMean(*self._encoder_args)

    def new_head(self, width: int) -> nn.Sequential:
        """A new 2-logit head over ``width`` inputs."""
        return _head(width, *self._head_args)


class SingleSequenceBaseline(_Rung):
    """Rung 1: one sequence at one time point, image only (settings: :class:`_Rung`)."""

    def __init__(self, **cfg: object) -> None:
        super().__init__(**cfg)  # type: ignore[arg-type]
        self.encoder = self.slice_encoder()
        self.head = self.new_head(self.encoder.width)

    def forward(self, images: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        """Images (B, Q, 2, k, 2, H, W), tabular (B, p) -> logits (B, 2)."""
        return self.head(self.encoder(images[:, self.sequence, self.timepoint]))


class SingleSequencePrePost(_Rung):
    """Rung 2: one sequence, both time points (shared encoder), image only."""

    def __init__(self, **cfg: object) -> None:
        super().__init__(**cfg)  # type: ignore[arg-type]
        self.encoder = self.slice_encoder()
        self.head = self.new_head(2 * self.encoder.width)

    def forward(self, images: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        """Images (B, Q, 2, k, 2, H, W), tabular (B, p) -> logits (B, 2)."""
        pre = self.encoder(images[:, self.sequence, 0])
        post = self.encoder(images[:, self.sequence, 1])
        return self.head(torch.cat([pre, post], 1))


class SingleSequenceTemporal(_Rung):
    """Rung 3: one sequence, both time points (shared encoder) + tabular."""

    def __init__(self, **cfg: object) -> None:
        super().__init__(**cfg)  # type: ignore[arg-type]
        self.encoder = self.slice_encoder()
        self.head = self.new_head(2 * self.encoder.width + self.tabular_dim)
        self.wide = nn.Linear(self.tabular_dim, 2)

    def forward(self, images: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        """Images (B, Q, 2, k, 2, H, W), tabular (B, p) -> logits (B, 2)."""
        pre = self.encoder(images[:, self.sequence, 0])
        post = self.encoder(images[:, self.sequence, 1])
        return self.head(torch.cat([pre, post, tabular], 1)) + self.wide(tabular)


class MultiSequenceFusion(_Rung):
    """Rung 4: a branch per sequence, both time points, concatenated + tabular."""

    def __init__(self, **cfg: object) -> None:
        super().__init__(**cfg)  # type: ignore[arg-type]
        self.encoders = nn.ModuleList(self.slice_encoder() for _ in range(self.n_sequences))
        width = self.encoders[0].width
        self.head = self.new_head(2 * self.n_sequences * width + self.tabular_dim)
        self.wide = nn.Linear(self.tabular_dim, 2)

    def forward(self, images: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        """Images (B, Q, 2, k, 2, H, W), tabular (B, p) -> logits (B, 2)."""
        parts = []
        for q, encoder in enumerate(self.encoders):
            parts += [encoder(images[:, q, 0]), encoder(images[:, q, 1])]
        return self.head(torch.cat([*parts, tabular], 1)) + self.wide(tabular)


class RelationNet(_Rung):
    """Rung 5: relation (difference, product, cosine) + trajectory, learned sequence weights."""

    def __init__(self, **cfg: object) -> None:
        super().__init__(**cfg)  # type: ignore[arg-type]
        dim = self.dim
        self.encoders = nn.ModuleList(self.slice_encoder() for _ in range(self.n_sequences))
        self.trajectory = nn.Sequential(nn.Linear(3 * dim, dim), nn.ELU())
        relation_width = 2 * dim + 1 + dim
        self.score = nn.Sequential(nn.Linear(relation_width, dim), nn.Tanh(), nn.Linear(dim, 1))
        self.head = self.new_head(relation_width + self.tabular_dim)
        self.wide = nn.Linear(self.tabular_dim, 2)
        self.last_weights: torch.Tensor | None = None

    def forward(self, images: torch.Tensor, tabular: torch.Tensor) -> torch.Tensor:
        """Images (B, Q, 2, k, 2, H, W), tabular (B, p) -> logits (B, 2)."""
        per_sequence = []
        for q, encoder in enumerate(self.encoders):
            a = encoder(images[:, q, 0])
            b = encoder(images[:, q, 1])
            cos = F.cosine_similarity(a, b, dim=1).unsqueeze(1)
            relation = torch.cat([b - a, a * b, cos], 1)
            trajectory = self.trajectory(torch.cat([a, b, b - a], 1))
            per_sequence.append(torch.cat([relation, trajectory], 1))
        stacked = torch.stack(per_sequence, 1)  # (B, Q, R)
        weights = torch.softmax(self.score(stacked).squeeze(2), 1)
        self.last_weights = weights.detach()
        fused = (weights.unsqueeze(2) * stacked).sum(1)
        return self.head(torch.cat([fused, tabular], 1)) + self.wide(tabular)


@register_model
def resnet_single(**cfg: object) -> nn.Module:
    """Ladder rung 1 (:class:`SingleSequenceBaseline`)."""
    return SingleSequenceBaseline(**cfg)  # type: ignore[arg-type]


@register_model
def pre_post(**cfg: object) -> nn.Module:
    """Ladder rung 2 (:class:`SingleSequencePrePost`)."""
    return SingleSequencePrePost(**cfg)  # type: ignore[arg-type]


@register_model
def single_temporal(**cfg: object) -> nn.Module:
    """Ladder rung 3 (:class:`SingleSequenceTemporal`)."""
    return SingleSequenceTemporal(**cfg)  # type: ignore[arg-type]


@register_model
def multi_sequence(**cfg: object) -> nn.Module:
    """Ladder rung 4 (:class:`MultiSequenceFusion`)."""
    return MultiSequenceFusion(**cfg)  # type: ignore[arg-type]


@register_model
def relation_net(**cfg: object) -> nn.Module:
    """Ladder rung 5 (:class:`RelationNet`)."""
    return RelationNet(**cfg)  # type: ignore[arg-type]
