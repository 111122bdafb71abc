"""pancreas_progression: 2D lesion-slice CNN extractor + LSTM over time points (seed 000, fixed).

Stage A, :class:`LesionSliceClassifier`: a torchvision ResNet trunk (1 channel) -> FC 256 + BN +
ReLU -> dropout -> FC ``embed_dim`` (the slice embedding) -> 2 logits, trained to tell lesion crops
from non-lesion crops (matched boxes around the lesion and organ slices just outside it) of the
fold's *training* patients only; the inner-validation patients of the fold select the epoch.

Stage B, per patient x time point ``t``:

* image vector ``e_t = (1/P) sum_phases sum_slices (a_s / sum a) emb(s)``: per phase the
  area-weighted mean of the slice embeddings (``a_s`` = lesion area of slice ``s``, mm²), then the
  mean over the ``P`` phases (the seed summed the three means, inflating the scale);
* size vector ``[log(1 + V_t), log(1 + A_t), log(1 + V_t) - log(1 + V_{t-1})]`` with ``V_t`` the
  lesion volume (mm³, mean over phases), ``A_t`` the largest slice area (mm²), the last term 0 at
  baseline;
* intensity vector ``[mean, sd]`` of the crop values inside the lesion mask, averaged over the
  phases (a time point without lesion voxels carries the previous one forward): the enhancement
  and heterogeneity that the small embedding does not keep;
* one sample per labelled time point ``t``: the sequence ``x_0 .. x_t`` (``x = [e, size,
  intensity]``) with
  label ``progression_next`` at ``t``.

:class:`ProgressionLSTM` runs a 2-layer LSTM over *packed* variable-length sequences and reads
the hidden state at each sequence's own last step (never a padded position, the seed's bug),
concatenates the baseline clinical vector and predicts 2 logits, plus a linear "wide" term of the
last step's own vector and the clinical vector (``logits = MLP([h_T, c]) + W [x_T, c]``, so the
linear effects of growth and labs are learnt as easily as by a logistic model); the score is
``softmax[:, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

from oncoflow.models.backbones import resnet_trunk
from oncoflow.models.registry import register_model


class LesionSliceClassifier(nn.Module):
    """Lesion-vs-non-lesion slice classifier whose penultimate layer is the slice embedding."""

    def __init__(
        self,
        backbone: str = "resnet18",
        embed_dim: int = 32,
        dropout: float = 0.3,
        weights: str | None = None,
    ) -> None:
        super().__init__()
        self.trunk, width = resnet_trunk(backbone, 1, weights)
        self.embedding = nn.Sequential(
            nn.Linear(width, 256),
            nn.BatchNorm1d(256),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(256, embed_dim),
        )
        self.classifier = nn.Sequential(nn.ReLU(), nn.Linear(embed_dim, 2))
        self.embed_dim = embed_dim

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Slices (B, 1, H, W) -> embeddings (B, embed_dim)."""
        return self.embedding(self.trunk(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Slices (B, 1, H, W) -> logits (B, 2) (lesion = class 1)."""
        return self.classifier(self.embed(x))


class ProgressionLSTM(nn.Module):
    """LSTM over time-point vectors, read at each sequence's true last step, + clinical head."""

    def __init__(
        self,
        input_dim: int,
        clinical_dim: int = 0,
        hidden: int = 32,
        layers: int = 2,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            input_dim,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.head = nn.Sequential(
            nn.Linear(hidden + clinical_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, 2),
        )
        self.wide = nn.Linear(input_dim + clinical_dim, 2)

    def last_states(self, sequences: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Top-layer hidden state after step ``lengths[i] - 1`` of each padded sequence (B, H)."""
        packed = pack_padded_sequence(
            sequences, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        _, (h_n, _) = self.lstm(packed)
        return h_n[-1]

    def forward(
        self, sequences: torch.Tensor, lengths: torch.Tensor, clinical: torch.Tensor
    ) -> torch.Tensor:
        """Padded sequences (B, T, D), lengths (B,), clinical (B, C) -> logits (B, 2)."""
        last = sequences[torch.arange(len(lengths)), lengths.to(sequences.device) - 1]
        deep = self.head(torch.cat([self.last_states(sequences, lengths), clinical], dim=1))
        return deep + self.wide(torch.cat([last, clinical], dim=1))


@register_model
def lesion_slice_classifier(**cfg: object) -> nn.Module:
    """Stage A of ``cnn_lstm`` (:class:`LesionSliceClassifier`)."""
    return LesionSliceClassifier(**cfg)  # type: ignore[arg-type]


@register_model
def progression_lstm(**cfg: object) -> nn.Module:
    """Stage B of ``cnn_lstm`` (:class:`ProgressionLSTM`)."""
    return ProgressionLSTM(**cfg)  # type: ignore[arg-type]


def collate_sequences(
    sequences: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (T_i, D) sequences to (B, T_max, D); return them with their lengths (B,)."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    return pad_sequence(list(sequences), batch_first=True), lengths
