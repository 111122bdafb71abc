"""nsclc_mmdls: the MM-DLS multitask fusion network (seed 004, rebuilt with its bugs fixed).

Per patient: ``k`` lesion slices with two channels (CT window and PET SUV on the CT grid), ``k``
lung-context patches (CT), and a tabular vector (PET metrics SUVmax, SUVmean, SUVpeak, MTV, TLG,
optional radiomics, clinical variables), all of *one* patient (the seed paired shuffled images with
unshuffled tabular rows).

* slice encoders :class:`~oncoflow.models.backbones.ConvEncoder` (lesion: 2 channels, context: 1);
* :class:`SliceAttentionFusion` across the slices of a patient: multi-head self-attention
  (residual + LayerNorm), then attention pooling ``v = sum_s softmax_s(q^T h_s / sqrt(d)) h_s``
  with a learned query ``q`` -> one vector per stack;
* fusion MLP ``[lesion, context] -> 256 -> 128`` (ReLU, dropout), concatenated with the tabular
  vector, then four linear heads: histology (1 logit), stage (``K`` logits), DFS risk and OS
  risk. A head may read a declared subset of the tabular columns (``head_columns``) and may leave
  out the image vector (``head_image``); after training, :meth:`MMDLS.declare_head` +
  :func:`refit_linear_head` can replace a classification head by a penalised logistic
  regression on its declared inputs of the frozen network.

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

from oncoflow.errors import ModelError
from oncoflow.models.backbones import ConvEncoder
from oncoflow.models.registry import register_model
from oncoflow.train.losses import cox_partial_likelihood_loss

HEADS: tuple[str, ...] = ("histology", "stage", "dfs", "os")


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
        head_columns: Mapping[str, Sequence[int]] | None = None,
        head_image: Mapping[str, bool] | None = None,
        **_: object,
    ) -> None:
        super().__init__()
        unknown = sorted(set(head_columns or {}).union(head_image or {}) - set(HEADS))
        if unknown:
            msg = f"mm_dls: unknown head(s) {', '.join(unknown)} (heads: {', '.join(HEADS)})"
            raise ModelError(msg)
        self.head_columns = {k: [int(i) for i in v] for k, v in (head_columns or {}).items()}
        self.head_image = {k: bool(head_image.get(k, True)) if head_image else True for k in HEADS}
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
        self.tabular_dim = tabular_dim
        self.histology = nn.Linear(self._width("histology"), 1)
        self.stage = nn.Linear(self._width("stage"), n_stages)
        self.dfs = nn.Linear(self._width("dfs"), 1)
        self.os = nn.Linear(self._width("os"), 1)

    def _width(self, head: str) -> int:
        """Input width of a head: image vector (when read) + its tabular columns."""
        columns = self.head_columns.get(head)
        tabular = self.tabular_dim if columns is None else len(columns)
        width = tabular + (self.image_width if self.head_image[head] else 0)
        if width == 0:
            msg = f"mm_dls: the {head} head reads neither the image vector nor a tabular column"
            raise ModelError(msg)
        return width

    def declare_head(self, head: str, columns: Sequence[int] | None, image: bool) -> nn.Linear:
        """Give ``head`` new inputs (tabular ``columns``, all when None; the image vector or not).

        The head's layer is replaced by a fresh one of the new width (same outputs, device and
        dtype), to be fitted by :func:`refit_linear_head`.
        """
        old = getattr(self, head)
        if columns is None:
            self.head_columns.pop(head, None)
        else:
            self.head_columns[head] = [int(i) for i in columns]
        self.head_image[head] = bool(image)
        layer = nn.Linear(self._width(head), old.out_features)
        layer = layer.to(device=old.weight.device, dtype=old.weight.dtype)
        setattr(self, head, layer)
        return layer

    def tabular_l1(self, weights: float | Mapping[str, float] = 1.0) -> torch.Tensor:
        """``sum_h lambda_h sum |W_h|`` over the weights each head gives the tabular inputs (lasso).

        With a hundred correlated radiomics columns and a hundred-odd training patients, each task
        should lean on the few columns that carry it; the penalty (``tabular_l1`` in the training
        settings) shrinks the rest towards zero. ``weights`` is one ``lambda`` for every head or
        one per head (``histology``, ``stage``, ``dfs``, ``os``; a head left out is not
        penalised): the tasks differ in how many columns carry them.
        """
        if not isinstance(weights, Mapping):
            weights = dict.fromkeys(HEADS, float(weights))
        unknown = sorted(set(weights) - set(HEADS))
        if unknown:
            msg = f"tabular_l1: unknown head(s) {', '.join(unknown)} (heads: {', '.join(HEADS)})"
            raise ModelError(msg)
        total = self.histology.weight.new_zeros(())
        for name in HEADS:
            if weights.get(name, 0.0):
                start = self.image_width if self.head_image[name] else 0
                layer = getattr(self, name)
                total = total + weights[name] * layer.weight[:, start:].abs().sum()
        return total

    def _stack(self, encoder: nn.Module, fusion: nn.Module, x: torch.Tensor) -> torch.Tensor:
        b, s = x.shape[:2]
        return fusion(encoder(x.reshape(b * s, *x.shape[2:])).reshape(b, s, -1))

    def head_inputs(
        self, lesion: torch.Tensor, context: torch.Tensor, tabular: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """What each head reads: ``[fused image vector (128), its tabular columns]`` (B, width).

        When no head reads the image vector (the ``mm_dls_tabular`` ablation) the slice
        encoders are not run at all.
        """
        fused = None
        if any(self.head_image.values()):
            image = torch.cat(
                [
                    self._stack(self.lesion_encoder, self.lesion_fusion, lesion),
                    self._stack(self.context_encoder, self.context_fusion, context),
                ],
                1,
            )
            fused = self.fusion(image)
        out = {}
        for head in HEADS:
            columns = self.head_columns.get(head)
            part = tabular if columns is None else tabular[:, columns]
            out[head] = (
                torch.cat([fused, part], 1) if fused is not None and self.head_image[head] else part
            )
        return out

    def forward(
        self, lesion: torch.Tensor, context: torch.Tensor, tabular: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Lesion (B, S, 2, H, W), context (B, S, 1, H, W), tabular (B, p) -> head outputs.

        Returns:
            ``histology`` (B,) logit, ``stage`` (B, K) logits, ``dfs`` and ``os`` (B,) risks.
        """
        z = self.head_inputs(lesion, context, tabular)
        return {
            "histology": self.histology(z["histology"]).squeeze(1),
            "stage": self.stage(z["stage"]),
            "dfs": self.dfs(z["dfs"]).squeeze(1),
            "os": self.os(z["os"]).squeeze(1),
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


REFIT_GRID: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def refit_linear_head(
    layer: nn.Linear,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_inner: np.ndarray,
    y_inner: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    grid: Sequence[float] = REFIT_GRID,
) -> dict[str, float]:
    """Refit a classification head as an L2-penalised logistic regression on frozen inputs.

    SGD with early stopping on the mean of four task scores leaves a linear head short of its
    optimum (the epoch is chosen for the shared encoder, and the cut points of a multi-class
    head converge slowly). After training, the head's inputs ``x`` are fixed, so its best
    weights are a convex problem: ``min_{W,b} sum_i w_i CE(y_i, softmax(W z_i + b)) +
    ||W||^2 / (2 C)`` with ``z = (x - mu) / sd`` standardised on the training rows (lbfgs;
    multinomial for ``K > 2`` outputs, one logit ``w^T z + b`` of class 1 for a one-output
    head). ``C`` is chosen on the inner-validation rows (lowest mean log-loss; ties go to the
    stronger penalty); the standardisation is folded back, ``W <- W / sd``, ``b <- b - W mu``,
    and written into ``layer`` in place. A class without training rows gets weight 0 and bias
    -30 (probability ~1e-13). Rows with label -1 are left out; only training and inner rows
    of the fold are ever seen.

    Args:
        layer: The head (out_features 1 = binary, else ``K`` classes).
        x_train: Head inputs (n, p) of the fold's training patients.
        y_train: Their class indices (n,), -1 = unknown.
        x_inner: Head inputs of the inner-validation patients (choose ``C``).
        y_inner: Their class indices.
        sample_weight: Per-class weights (K,) for the training rows (the loss's class weights).
        grid: Candidate ``C`` values.

    Returns:
        ``C``, ``inner_log_loss`` (NaN without labelled inner rows, then ``C`` = 1) and
        ``train_rows``.

    Raises:
        ModelError: Fewer than two classes among the labelled training rows.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    n_classes = max(2, layer.out_features)
    keep, keep_inner = y_train >= 0, y_inner >= 0
    x, y = np.asarray(x_train, float)[keep], np.asarray(y_train)[keep].astype(int)
    if len(np.unique(y)) < 2:
        msg = f"head refit: the training rows hold {len(np.unique(y))} class(es); need 2"
        raise ModelError(msg)
    mu, sd = x.mean(0), x.std(0)
    sd[sd == 0] = 1.0
    weights = None if sample_weight is None else np.asarray(sample_weight, float)[y]
    xi, yi = (np.asarray(x_inner, float)[keep_inner] - mu) / sd, np.asarray(y_inner)[keep_inner]

    def fit(c: float) -> LogisticRegression:
        model = LogisticRegression(C=c, max_iter=5000)
        return model.fit((x - mu) / sd, y, sample_weight=weights)

    def probabilities(model: LogisticRegression, z: np.ndarray) -> np.ndarray:
        full = np.full((len(z), n_classes), 1e-12)
        full[:, model.classes_] = model.predict_proba(z)
        return full / full.sum(1, keepdims=True)

    best: tuple[float, float, LogisticRegression] | None = None
    if len(yi):
        for c in sorted(grid):
            model = fit(c)
            loss = log_loss(yi.astype(int), probabilities(model, xi), labels=range(n_classes))
            if best is None or loss < best[0] - 1e-12:
                best = (float(loss), float(c), model)
    else:
        best = (float("nan"), 1.0, fit(1.0))
    loss, c, model = best
    coef = np.zeros((n_classes, x.shape[1]))
    bias = np.full(n_classes, -30.0)
    if layer.out_features == 1:  # one logit of class 1
        coef, bias = model.coef_[:1].copy(), model.intercept_[:1].copy()
    else:
        coef[model.classes_] = (
            model.coef_
            if len(model.classes_) > 2
            else np.vstack([-model.coef_[0] / 2, model.coef_[0] / 2])
        )
        bias[model.classes_] = (
            model.intercept_
            if len(model.classes_) > 2
            else np.array([-model.intercept_[0] / 2, model.intercept_[0] / 2])
        )
    coef = coef / sd
    bias = bias - coef @ mu
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(coef, dtype=layer.weight.dtype))
        layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype))
    return {"C": c, "inner_log_loss": loss, "train_rows": float(len(y))}


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
