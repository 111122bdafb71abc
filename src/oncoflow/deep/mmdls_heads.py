"""MM-DLS heads: which tabular columns each head reads, and the refit of a head after training.

A head (``histology``, ``stage``, ``dfs``, ``os``) reads the fused image vector and/or a subset
of the tabular vector (:func:`head_layout`). A ``refit`` head (histology, stage) reads every input
while the network trains, so its task shapes the shared encoder; after training
(:func:`refit_heads`) it is replaced by a penalised logistic regression on its declared inputs of
the frozen network, its penalty ``C`` chosen by the inner patients' log-loss
(:func:`~oncoflow.models.mm_dls.refit_linear_head`).

The survival heads (``dfs``, ``os``) output a Cox risk ``r``; :func:`breslow_baseline` keeps
the Breslow baseline of the training patients (``model.pt``) and :func:`baseline_survival`
turns a risk into ``S(t | x)`` with it, in training and when a new cohort is scored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from oncoflow.errors import ModelError
from oncoflow.models.mm_dls import HEADS, MMDLS, refit_linear_head

log = logging.getLogger(__name__)

REFITTABLE: tuple[str, ...] = ("histology", "stage")
"""The heads a logistic refit can replace (the classification heads)."""

VARIANTS: tuple[str, ...] = ("mm_dls_tabular", "mm_dls_image", "mm_dls")
"""The input ablation of MM-DLS, simplest first: tabular inputs only, image vector only, both."""


def variant_heads(
    heads: Mapping[str, Mapping[str, Any]], variant: str
) -> dict[str, dict[str, Any]]:
    """The ``heads`` settings of one input ablation (:data:`VARIANTS`).

    ``mm_dls`` keeps ``heads`` as declared. ``mm_dls_tabular`` turns the image vector off in
    every head (each keeps its declared columns, all when none are declared);
    ``mm_dls_image`` gives every head the image vector and no tabular column. ``refit`` flags
    are kept, so a refit head is refit on what its variant lets it read.

    Raises:
        ModelError: ``variant`` is not one of :data:`VARIANTS`.
    """
    if variant not in VARIANTS:
        msg = f"mm_dls: unknown variant {variant!r} (variants: {', '.join(VARIANTS)})"
        raise ModelError(msg)
    out = {head: dict(spec) for head, spec in heads.items()}
    if variant == "mm_dls":
        return out
    for head in HEADS:
        spec = out.setdefault(head, {})
        if variant == "mm_dls_tabular":
            spec["image"] = False
        else:
            spec["image"], spec["columns"] = True, []
    return out


def head_layout(
    heads: Mapping[str, Mapping[str, Any]], encoded: Sequence[str]
) -> tuple[dict[str, list[int]], dict[str, bool]]:
    """Column indices and image flag of each head from the ``heads`` settings.

    Args:
        heads: :attr:`~oncoflow.deep.mmdls_settings.MMDLSSettings.heads`.
        encoded: The encoded column names (:attr:`TabularEncoder.columns_`; a one-hot column
            is ``<column>=<category>``).

    Returns:
        (``{head: indices into the tabular vector}`` for heads with ``columns``,
        ``{head: reads the image vector}``).

    Raises:
        ModelError: An unknown head or key, ``refit`` on a survival head, or a column that is
            not in the tabular vector (the known names are listed).
    """
    columns: dict[str, list[int]] = {}
    image: dict[str, bool] = {}
    for head, spec in heads.items():
        if head not in HEADS:
            msg = f"mm_dls heads: unknown head {head!r} (heads: {', '.join(HEADS)})"
            raise ModelError(msg)
        extra = sorted(set(spec) - {"columns", "image", "refit"})
        if extra:
            msg = f"mm_dls heads.{head}: unknown key(s) {', '.join(extra)}"
            raise ModelError(msg)
        if spec.get("refit") and head not in REFITTABLE:
            msg = f"mm_dls heads.{head}: refit is for {' and '.join(REFITTABLE)} only"
            raise ModelError(msg)
        image[head] = bool(spec.get("image", True))
        if spec.get("columns") is None:
            continue
        base = [c.split("=", 1)[0] if c not in spec["columns"] else c for c in encoded]
        missing = [c for c in spec["columns"] if c not in base]
        if missing:
            known = ", ".join(sorted({b for b in base if "=" not in b})[:40])
            msg = (
                f"mm_dls heads.{head}.columns: {', '.join(missing)} not in the tabular vector "
                f"(known: {known}, ...)"
            )
            raise ModelError(msg)
        columns[head] = [i for i, c in enumerate(base) if c in spec["columns"]]
    return columns, image


def refit_heads(
    model: MMDLS,
    heads: Sequence[str],
    layout: tuple[Mapping[str, list[int]], Mapping[str, bool]],
    head_inputs: Callable[[str], dict[str, np.ndarray]],
    labels: Mapping[str, Mapping[str, np.ndarray]],
    stage_weight: np.ndarray,
) -> dict[str, dict[str, Any]]:
    """Replace each ``refit`` head of the trained (eval-mode) network by its logistic model.

    Per head, in order: the head gets its declared inputs (:meth:`MMDLS.declare_head`, a fresh
    layer), the frozen network's inputs to it are computed for the ``train`` and ``inner``
    patients, and :func:`~oncoflow.models.mm_dls.refit_linear_head` fits it on ``train``
    (``stage``: class weights ``stage_weight``), choosing ``C`` on ``inner``.

    Args:
        model: The trained MM-DLS network.
        heads: The heads to refit (of :data:`REFITTABLE`).
        layout: :func:`head_layout` of the settings (columns, image flag per head).
        head_inputs: ``group -> {head: inputs of that head}`` for ``train`` and ``inner``.
        labels: ``group -> targets`` (``histology``, ``stage``) of ``train`` and ``inner``.
        stage_weight: Stage class weights ``N / (K n_c)`` of the training patients.

    Returns:
        ``{head: refit summary}`` (chosen ``C``, inner log-loss, rows used).
    """
    columns, image = layout
    refits = {}
    for head in heads:
        model.declare_head(head, columns.get(head), image.get(head, True))
        x = {g: head_inputs(g)[head] for g in ("train", "inner")}
        refits[head] = refit_linear_head(
            getattr(model, head),
            x["train"],
            labels["train"][head],
            x["inner"],
            labels["inner"][head],
            sample_weight=stage_weight if head == "stage" else None,
        )
        log.info(
            "%s head refit: C %g, inner log-loss %.3f",
            head,
            *map(refits[head].get, ("C", "inner_log_loss")),
        )
    return refits


def breslow_baseline(
    fitted: np.ndarray, time: np.ndarray, event: np.ndarray, horizons: Sequence[float]
) -> dict[str, Any]:
    """The Breslow baseline of a survival head at ``horizons`` (days), as plain numbers.

    Over the patients with a known time (``time`` finite; the ``train`` + ``inner`` patients):
    ``c = mean_i r_i`` (the centre), and the cumulative baseline hazard

    ``H_0(t) = sum_{t_i <= t, event_i} 1 / sum_{j: t_j >= t_i} exp(r_j - c)``

    at each horizon, as :func:`~oncoflow.models.mm_dls.breslow_survival` computes it.

    Args:
        fitted: Risks ``r`` of the patients (the network's output).
        time: Their times (days; NaN when unknown).
        event: Their events (1 = event; NaN when unknown).
        horizons: Days at which ``H_0`` is kept.

    Returns:
        ``{"centre": c, "horizons": [t, ...], "cumulative_hazard": [H_0(t), ...]}``.
    """
    ok = np.isfinite(np.asarray(time, float))
    risk = np.asarray(fitted)[ok]
    centre = float(np.mean(risk))
    scale = np.exp(np.asarray(risk, float) - centre)
    times = np.asarray(time, float)[ok]
    events = np.asarray(event, float)[ok] > 0
    jumps = np.array([1.0 / scale[times >= t].sum() for t in times[events]], dtype=float)
    cumulative = [float(jumps[times[events] <= h].sum()) for h in horizons]
    return {
        "centre": centre,
        "horizons": [float(h) for h in horizons],
        "cumulative_hazard": cumulative,
    }


def baseline_survival(baseline: Mapping[str, Any], risk: np.ndarray) -> np.ndarray:
    """``S(t | x) = exp(-H_0(t) exp(r - c))`` at each horizon of a :func:`breslow_baseline`.

    Args:
        baseline: :func:`breslow_baseline` of the head (centre ``c``, ``H_0`` per horizon).
        risk: Risks ``r`` of the patients to score.

    Returns:
        Survival probabilities, ``(n patients, n horizons)``.
    """
    scale = np.exp(np.asarray(risk, float) - float(baseline["centre"]))
    return np.exp(-np.outer(scale, np.asarray(baseline["cumulative_hazard"], float)))
