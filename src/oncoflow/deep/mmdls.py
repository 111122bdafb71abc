"""nsclc_mmdls: the MM-DLS multitask fusion network (seed 004, rebuilt with its bugs fixed).

Per patient: ``k`` lesion slices with two channels (CT window and PET SUV on the CT grid), ``k``
lung-context patches (CT), and a tabular vector (PET metrics SUVmax, SUVmean, SUVpeak, MTV, TLG,
optional radiomics, clinical variables), all of *one* patient (the seed paired shuffled images with
unshuffled tabular rows).

* slice encoders :class:`~oncoflow.deep.backbones.ConvEncoder` (lesion: 2 channels, context: 1);
* :class:`SliceAttentionFusion` across the slices of a patient: multi-head self-attention
  (residual + LayerNorm), then attention pooling ``v = sum_s softmax_s(q^T h_s / sqrt(d)) h_s``
  with a learned query ``q`` -> one vector per stack;
* fusion MLP ``[lesion, context] -> 256 -> 128`` (ReLU, dropout), concatenated with the tabular
  vector, then four heads: histology (1 logit), stage (``K`` logits), DFS risk and OS risk.

:func:`multitask_loss` = ``w_h BCE(histology) + w_s CE(stage) + w_d Cox(DFS) + w_o Cox(OS)``, the
Cox terms being the negative partial log-likelihood per event with Efron ties
(:func:`~oncoflow.train.losses.cox_partial_likelihood_loss`; a batch without events adds 0).
:func:`breslow_survival` turns risks into ``S(t | x) = exp(-H_0(t) exp(r))`` with the Breslow
baseline cumulative hazard of the training patients, for Brier scores (not a rescaled risk).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from oncoflow.deep.backbones import ConvEncoder
from oncoflow.errors import ModelError
from oncoflow.train.losses import cox_partial_likelihood_loss
from oncoflow.train.registry import register_model


class SliceAttentionFusion(nn.Module):
    """Self-attention across slices, then attention pooling into one vector (B, S, d) -> (B, d)."""

    def __init__(self, dim: int = 128, heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.query = nn.Parameter(torch.randn(dim) / math.sqrt(dim))
        self.dim = dim
        self.last_weights: torch.Tensor | None = None

    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        """Slice vectors (B, S, d) -> patient vector (B, d)."""
        attended, _ = self.attention(slices, slices, slices, need_weights=False)
        h = self.norm(slices + attended)
        weights = torch.softmax(h @ self.query / math.sqrt(self.dim), dim=1)
        self.last_weights = weights.detach()
        return (weights.unsqueeze(2) * h).sum(1)


class MMDLS(nn.Module):
    """Multitask PET/CT fusion network (module docstring)."""

    def __init__(
        self,
        tabular_dim: int,
        n_stages: int = 3,
        dim: int = 128,
        heads: int = 4,
        dropout: float = 0.3,
        lesion_channels: int = 2,
        **_: object,
    ) -> None:
        super().__init__()
        self.lesion_encoder = ConvEncoder(lesion_channels, dim)
        self.context_encoder = ConvEncoder(1, dim)
        self.lesion_fusion = SliceAttentionFusion(dim, heads)
        self.context_fusion = SliceAttentionFusion(dim, heads)
        self.fusion = nn.Sequential(
            nn.Linear(2 * dim, 256),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(256, 128),
            nn.ReLU(inplace=True),
        )
        self.image_width = 128
        width = self.image_width + tabular_dim
        self.histology = nn.Linear(width, 1)
        self.stage = nn.Linear(width, n_stages)
        self.dfs = nn.Linear(width, 1)
        self.os = nn.Linear(width, 1)

    def tabular_l1(self, weights: float | Mapping[str, float] = 1.0) -> torch.Tensor:
        """``sum_h lambda_h sum |W_h|`` over the weights each head gives the tabular inputs (lasso).

        With a hundred correlated radiomics columns and a hundred-odd training patients, each task
        should lean on the few columns that carry it; the penalty (``tabular_l1`` in the training
        settings) shrinks the rest towards zero. ``weights`` is one ``lambda`` for every head or
        one per head (``histology``, ``stage``, ``dfs``, ``os``; a head left out is not
        penalised): the tasks differ in how many columns carry them.
        """
        heads = {"histology": self.histology, "stage": self.stage, "dfs": self.dfs, "os": self.os}
        if not isinstance(weights, Mapping):
            weights = dict.fromkeys(heads, float(weights))
        unknown = sorted(set(weights) - set(heads))
        if unknown:
            msg = f"tabular_l1: unknown head(s) {', '.join(unknown)} (heads: {', '.join(heads)})"
            raise ModelError(msg)
        total = self.histology.weight.new_zeros(())
        for name, layer in heads.items():
            if weights.get(name, 0.0):
                total = total + weights[name] * layer.weight[:, self.image_width :].abs().sum()
        return total

    def _stack(self, encoder: nn.Module, fusion: nn.Module, x: torch.Tensor) -> torch.Tensor:
        b, s = x.shape[:2]
        return fusion(encoder(x.reshape(b * s, *x.shape[2:])).reshape(b, s, -1))

    def forward(
        self, lesion: torch.Tensor, context: torch.Tensor, tabular: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Lesion (B, S, 2, H, W), context (B, S, 1, H, W), tabular (B, p) -> head outputs.

        Returns:
            ``histology`` (B,) logit, ``stage`` (B, K) logits, ``dfs`` and ``os`` (B,) risks.
        """
        image = torch.cat(
            [
                self._stack(self.lesion_encoder, self.lesion_fusion, lesion),
                self._stack(self.context_encoder, self.context_fusion, context),
            ],
            1,
        )
        z = torch.cat([self.fusion(image), tabular], 1)
        return {
            "histology": self.histology(z).squeeze(1),
            "stage": self.stage(z),
            "dfs": self.dfs(z).squeeze(1),
            "os": self.os(z).squeeze(1),
        }


@register_model
def mm_dls(**cfg: object) -> nn.Module:
    """The MM-DLS network (:class:`MMDLS`)."""
    return MMDLS(**cfg)  # type: ignore[arg-type]


def multitask_loss(
    outputs: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
    weights: Mapping[str, float],
    *,
    stage_weight: torch.Tensor | None = None,
    ties: str = "efron",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the four task losses (module docstring) and each term's value.

    ``targets`` holds ``histology`` (0/1 float), ``stage`` (int64), ``dfs_time``, ``dfs_event``,
    ``os_time``, ``os_event``; a patient with a missing label (-1 or NaN) adds nothing to that
    task.
    """
    terms: dict[str, torch.Tensor] = {}
    h = targets["histology"]
    known = h >= 0
    terms["histology"] = (
        F.binary_cross_entropy_with_logits(outputs["histology"][known], h[known])
        if known.any()
        else outputs["histology"].sum() * 0.0
    )
    s = targets["stage"]
    known = s >= 0
    terms["stage"] = (
        F.cross_entropy(outputs["stage"][known], s[known], weight=stage_weight)
        if known.any()
        else outputs["stage"].sum() * 0.0
    )
    for name in ("dfs", "os"):
        time, event = targets[f"{name}_time"], targets[f"{name}_event"]
        known = torch.isfinite(time) & (time > 0)
        terms[name] = cox_partial_likelihood_loss(
            outputs[name][known], time[known], event[known], ties=ties
        )
    total = sum(float(weights.get(k, 1.0)) * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}  # type: ignore[return-value]


def breslow_survival(
    train_risk: np.ndarray,
    train_time: np.ndarray,
    train_event: np.ndarray,
    risk: np.ndarray,
    horizons: Sequence[float],
) -> np.ndarray:
    """``S(t | x) = exp(-H_0(t) exp(r))`` at each horizon (n, len(horizons)).

    ``H_0(t) = sum_{t_i <= t, event_i} 1 / sum_{j: t_j >= t_i} exp(r_j)`` over the training
    patients (Breslow); risks are centred on the training mean first (``H_0`` absorbs it).
    """
    centre = float(np.mean(train_risk))
    e_train = np.exp(np.asarray(train_risk, float) - centre)
    t_train = np.asarray(train_time, float)
    events = np.asarray(train_event, float) > 0
    jumps = np.array([1.0 / e_train[t_train >= t].sum() for t in t_train[events]], dtype=float)
    event_times = t_train[events]
    cum = np.array([jumps[event_times <= h].sum() for h in horizons])
    scale = np.exp(np.asarray(risk, float) - centre)
    return np.exp(-np.outer(scale, cum))
