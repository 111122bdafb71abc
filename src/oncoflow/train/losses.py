"""Loss functions for training survival and classification networks.

* :func:`cox_partial_likelihood_loss` - negative Cox partial log-likelihood of a network's risk
  score, averaged over the events of the batch, with Breslow or exact Efron handling of ties.
* :func:`focal_loss` - multi-class focal loss (Lin et al. 2017) on softmax logits; with
  ``gamma=0`` and no ``alpha`` it is the ordinary cross-entropy.
* :func:`class_weights` - inverse-frequency class weights ``N / (K n_c)``, e.g. for ``alpha``
  of :func:`focal_loss` or ``weight`` of :func:`torch.nn.functional.cross_entropy`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812

from oncoflow.errors import ModelError

_TIES = ("breslow", "efron")


def cox_partial_likelihood_loss(
    risk: Tensor, time: Tensor, event: Tensor, ties: str = "efron"
) -> Tensor:
    r"""Negative Cox partial log-likelihood per event.

    With ``risk`` the linear predictor :math:`\eta_i` (higher = earlier event), the distinct
    event times :math:`t_1 < \dots < t_J`, :math:`D_j` the :math:`d_j` samples with an event at
    :math:`t_j` and :math:`R_j = \{i : T_i \ge t_j\}` the risk set (censored samples with
    :math:`T_i = t_j` are still at risk), let :math:`S_{R_j} = \sum_{i \in R_j} e^{\eta_i}` and
    :math:`S_{D_j} = \sum_{i \in D_j} e^{\eta_i}`. The partial log-likelihood is

    * Breslow: :math:`\ell = \sum_j \big[\sum_{i \in D_j} \eta_i - d_j \log S_{R_j}\big]`,
    * Efron: :math:`\ell = \sum_j \big[\sum_{i \in D_j} \eta_i
      - \sum_{l=0}^{d_j - 1} \log\big(S_{R_j} - \tfrac{l}{d_j} S_{D_j}\big)\big]`,

    both equal without tied event times. The loss is :math:`-\ell / \sum_j d_j`. It is computed
    in log space (``logcumsumexp`` over the samples sorted by decreasing time, and
    :math:`\log(S_R - c S_D) = \log S_R + \operatorname{log1p}(-c\, S_D / S_R)`), so it is
    invariant to adding a constant to ``risk`` and does not overflow for large scores. The cost
    is one sort, :math:`O(n \log n)`.

    Args:
        risk: Risk scores, shape ``(n,)``, floating point; gradients flow through it.
        time: Follow-up times, shape ``(n,)``, finite (the time of the event or of censoring).
        event: 1 (or ``True``) for an observed event, 0 for censoring, shape ``(n,)``.
        ties: ``"efron"`` (default, as lifelines and R's ``coxph``) or ``"breslow"``.

    Returns:
        A scalar tensor. For a batch without any event it is ``risk.sum() * 0.0``: zero, still
        attached to the graph, so ``backward()`` gives zero gradients rather than NaN.

    Raises:
        ModelError: ``risk``, ``time`` or ``event`` not one-dimensional or of different lengths,
            ``risk`` not floating point, ``time`` not finite, ``event`` not 0/1, or unknown
            ``ties``.
    """
    if ties not in _TIES:
        raise ModelError(f"Cox loss: unknown ties {ties!r}; expected one of {', '.join(_TIES)}")
    for name, tensor in (("risk", risk), ("time", time), ("event", event)):
        if tensor.ndim != 1:
            raise ModelError(
                f"Cox loss: {name} must be one-dimensional (n,), got shape {tuple(tensor.shape)}"
                + ("; squeeze the last dimension" if tensor.ndim == 2 else "")
            )
    if not (risk.shape[0] == time.shape[0] == event.shape[0]):
        raise ModelError(
            "Cox loss: risk, time and event have different lengths "
            f"({risk.shape[0]}, {time.shape[0]}, {event.shape[0]})"
        )
    if not risk.is_floating_point():
        raise ModelError(f"Cox loss: risk must be floating point, got {risk.dtype}")
    time = time.to(device=risk.device)
    event = event.to(device=risk.device)
    if not bool(torch.isfinite(time).all()):
        raise ModelError("Cox loss: time contains NaN or infinite values")
    if event.dtype != torch.bool:
        if bool(((event != 0) & (event != 1)).any()):
            raise ModelError("Cox loss: event must be 0 or 1")
        event = event != 0
    n_events = int(event.sum())
    if n_events == 0:
        return risk.sum() * 0.0

    # Sort by decreasing time: the risk set of a time is a prefix ending at its last tie.
    order = torch.argsort(time, descending=True, stable=True)
    eta = risk[order]
    t = time[order]
    e = event[order]
    _, group, counts = torch.unique_consecutive(t, return_inverse=True, return_counts=True)
    last = torch.cumsum(counts, 0) - 1
    log_s_risk = torch.logcumsumexp(eta, 0)[last]  # log S_R per distinct time

    group_e = group[e]
    d = torch.zeros(counts.shape[0], dtype=eta.dtype, device=eta.device)
    d = d.index_add(0, group_e, torch.ones_like(group_e, dtype=eta.dtype))
    has_event = d > 0

    loglik = eta[e].sum()
    if ties == "breslow":
        loglik = loglik - (d[has_event] * log_s_risk[has_event]).sum()
    else:
        # log S_D per group of tied events, stabilised with the group's (constant) maximum.
        eta_e = eta[e]
        gmax = torch.full_like(d, -torch.inf).scatter_reduce(
            0, group_e, eta_e.detach(), reduce="amax", include_self=True
        )
        s_d = torch.zeros_like(d).index_add(0, group_e, torch.exp(eta_e - gmax[group_e]))
        log_s_d = torch.log(s_d[has_event]) + gmax[has_event]
        lsr = log_s_risk[has_event]
        dj = d[has_event]
        ratio = torch.exp(log_s_d - lsr).clamp(max=1.0)  # S_D / S_R <= 1
        ell = torch.arange(int(dj.max()), dtype=eta.dtype, device=eta.device)
        valid = ell[None, :] < dj[:, None]
        # l / d_j on valid cells, 0 elsewhere so padded cells give log1p(0) = 0 (no NaN grads).
        frac = torch.where(valid, ell[None, :] / dj[:, None], torch.zeros_like(ell[None, :]))
        terms = lsr[:, None] + torch.log1p(-frac * ratio[:, None])
        loglik = loglik - torch.where(valid, terms, torch.zeros_like(terms)).sum()
    return -loglik / n_events


def focal_loss(
    logits: Tensor, target: Tensor, *, gamma: float = 2.0, alpha: Tensor | None = None
) -> Tensor:
    r"""Multi-class focal loss on softmax logits.

    With :math:`p_{i,y_i} = \operatorname{softmax}(z_i)_{y_i}` the predicted probability of the
    true class,

    .. math::
        L = \frac{1}{n} \sum_{i=1}^{n} -\alpha_{y_i} (1 - p_{i,y_i})^{\gamma} \log p_{i,y_i},

    a plain mean over samples (unlike ``F.cross_entropy(weight=...)``, which divides by the sum
    of the weights). :math:`\gamma > 0` down-weights well-classified samples; with
    :math:`\gamma = 0` and ``alpha=None`` (:math:`\alpha \equiv 1`) it equals
    ``F.cross_entropy(logits, target)``.

    Args:
        logits: Unnormalised class scores, shape ``(n, K)``, floating point.
        target: True class indices in ``[0, K)``, shape ``(n,)``, integer.
        gamma: Focusing parameter :math:`\gamma \ge 0`.
        alpha: Optional per-class weights, shape ``(K,)`` (e.g. :func:`class_weights`).

    Returns:
        A scalar tensor; ``logits.sum() * 0.0`` for an empty batch.

    Raises:
        ModelError: Bad shapes or dtypes, target out of range, or negative ``gamma``.
    """
    if logits.ndim != 2 or not logits.is_floating_point():
        raise ModelError(
            f"focal loss: logits must be floating point of shape (n, K), got "
            f"{tuple(logits.shape)} {logits.dtype}"
        )
    n, k = logits.shape
    if target.ndim != 1 or target.shape[0] != n:
        raise ModelError(
            f"focal loss: target must have shape ({n},) to match logits, got {tuple(target.shape)}"
        )
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ModelError(f"focal loss: target must hold integer class indices, got {target.dtype}")
    if gamma < 0:
        raise ModelError(f"focal loss: gamma must be >= 0, got {gamma}")
    if alpha is not None and (alpha.ndim != 1 or alpha.shape[0] != k):
        raise ModelError(
            f"focal loss: alpha must have shape ({k},) (one weight per class), "
            f"got {tuple(alpha.shape)}"
        )
    if n == 0:
        return logits.sum() * 0.0
    target = target.to(device=logits.device, dtype=torch.long)
    if bool(((target < 0) | (target >= k)).any()):
        raise ModelError(f"focal loss: target values must lie in [0, {k})")
    log_p = F.log_softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
    loss = -log_p
    if gamma != 0:
        loss = loss * (1.0 - log_p.exp()).clamp(min=0.0) ** gamma
    if alpha is not None:
        loss = loss * alpha.to(device=logits.device, dtype=logits.dtype)[target]
    return loss.mean()


def class_weights(labels: np.ndarray | Tensor, n_classes: int) -> Tensor:
    r"""Inverse-frequency class weights :math:`w_c = N / (K\, n_c)`.

    :math:`N` is the number of labels, :math:`K` = ``n_classes`` and :math:`n_c` the count of
    class :math:`c`; balanced classes all get weight 1. A class absent from ``labels``
    (:math:`n_c = 0`) gets weight 1.0 so that the weights stay finite.

    Args:
        labels: Class indices in ``[0, n_classes)``, one-dimensional, integer-valued.
        n_classes: Number of classes :math:`K \ge 1`.

    Returns:
        A float32 tensor of shape ``(n_classes,)`` on the CPU.

    Raises:
        ModelError: ``n_classes < 1``, labels not one-dimensional, not integers, or out of range.
    """
    if n_classes < 1:
        raise ModelError(f"class weights: n_classes must be >= 1, got {n_classes}")
    arr = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if arr.ndim != 1:
        raise ModelError(f"class weights: labels must be one-dimensional, got shape {arr.shape}")
    if arr.size and (
        arr.dtype == np.bool_
        or not np.issubdtype(arr.dtype, np.number)
        or not np.all(np.isfinite(arr))
        or not np.all(arr == np.round(arr))
    ):
        raise ModelError("class weights: labels must be integer class indices")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ModelError(
            f"class weights: labels must lie in [0, {n_classes}), "
            f"got min {arr.min()} and max {arr.max()}"
        )
    counts = np.bincount(arr, minlength=n_classes).astype(np.float64)
    weights = np.ones(n_classes, dtype=np.float64)
    present = counts > 0
    weights[present] = arr.size / (n_classes * counts[present])
    return torch.from_numpy(weights.astype(np.float32))
