"""Report figures (matplotlib, Agg): every figure has labelled axes and is returned as PNG bytes.

* :func:`mask_montage` - one tile per patient: the axial slice with the largest mask area, the
  image windowed to its 1st-99th percentile and the mask outline on top;
* :func:`slide_montage` - one thumbnail per whole-slide image;
* :func:`site_effect_figure` - share of features with a significant site effect before/after ComBat;
* :func:`c_index_figure` - test C-index with CI per model and variant (negative control beside
  the real models) and the oracle value of the demo;
* :func:`km_figure` - Kaplan-Meier curves of the two risk groups with the log-rank p-value;
* :func:`td_auc_figure` - time-dependent AUC at each horizon.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def _grid(n: int, columns: int = 6) -> tuple[int, int]:
    cols = max(1, min(columns, n))
    return int(np.ceil(n / cols)), cols


def mid_lesion_slice(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The axial slice (last axis of a nibabel array) with the largest mask area.

    Returns:
        ``(image slice, mask slice, slice index)``; the middle slice when the mask is empty.
    """
    area = (mask > 0).reshape(-1, mask.shape[-1]).sum(axis=0)
    k = int(np.argmax(area)) if area.any() else mask.shape[-1] // 2
    return image[..., k], mask[..., k], k


def mask_montage(panels: Sequence[tuple[str, np.ndarray, np.ndarray]], title: str) -> bytes:
    """Montage of ``(label, image slice, mask slice)`` panels with the mask outline in colour."""
    plt = _pyplot()
    rows, cols = _grid(len(panels))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.1 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (label, image, mask) in zip(axes.flat, panels, strict=False):
        low, high = np.percentile(image, [1, 99]) if image.size else (0, 1)
        ax.imshow(np.rot90(image), cmap="gray", vmin=low, vmax=max(high, low + 1e-6))
        if np.any(mask > 0):
            ax.contour(np.rot90(mask > 0), levels=[0.5], colors=["#ff3b30"], linewidths=0.8)
        ax.set_title(label, fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def slide_montage(panels: Sequence[tuple[str, np.ndarray]], title: str) -> bytes:
    """Montage of ``(label, RGB thumbnail)`` panels, one per slide."""
    plt = _pyplot()
    rows, cols = _grid(len(panels))
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.1 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (label, thumb) in zip(axes.flat, panels, strict=False):
        ax.imshow(thumb)
        ax.set_title(label, fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def site_effect_figure(stats: Mapping[str, Mapping[str, Any]]) -> bytes:
    """Bars: fraction of features with a Kruskal-Wallis site effect (p < alpha), before/after.

    Args:
        stats: Feature source -> ComBat statistics of the final fold (``before`` / ``after`` with
            ``all`` -> ``kruskal_fraction_significant``).
    """
    plt = _pyplot()
    sources = list(stats)
    x = np.arange(len(sources))
    before = [stats[s]["before"]["all"]["kruskal_fraction_significant"] for s in sources]
    after = [stats[s]["after"]["all"]["kruskal_fraction_significant"] for s in sources]
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(sources), 3.0))
    ax.bar(x - 0.2, before, 0.4, label="before ComBat", color="#8e8e93")
    ax.bar(x + 0.2, after, 0.4, label="after ComBat", color="#0a84ff")
    alpha = stats[sources[0]]["before"]["all"].get("alpha", 0.05)
    ax.axhline(alpha, color="k", lw=0.8, ls="--", label=f"expected by chance ({alpha:g})")
    ax.set_xticks(x, sources)
    ax.set_xlabel("feature source")
    ax.set_ylabel("fraction of features with site effect")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    return _png(fig)


def c_index_figure(
    rows: Sequence[Mapping[str, Any]], oracle: float | None, target: str, metric: str
) -> bytes:
    """Horizontal interval plot of a metric per model, with chance and the oracle.

    One row per ``{"label", "value", "ci_low", "ci_high", "control"}`` (negative controls in
    grey); chance (0.5) dotted, the oracle dashed.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 0.9 + 0.28 * len(rows)))
    for i, row in enumerate(rows):
        value = row["value"]
        if value is None:
            continue
        colour = "#8e8e93" if row.get("control") else "#0a84ff"
        low = row["ci_low"] if row["ci_low"] is not None else value
        high = row["ci_high"] if row["ci_high"] is not None else value
        ax.errorbar(value, i, xerr=[[value - low], [high - value]], fmt="o", color=colour, ms=4)
    ax.set_yticks(range(len(rows)), [row["label"] for row in rows], fontsize=7)
    ax.axvline(0.5, color="k", lw=0.8, ls=":", label="chance")
    if oracle is not None:
        ax.axvline(oracle, color="#34c759", lw=1.2, ls="--", label=f"oracle {oracle:.2f}")
    ax.set_xlim(0.2, 1.0)
    ax.set_xlabel(f"{metric} on the test splits ({target}), 95 % CI")
    ax.set_ylabel("variant / model")
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def forest_figure(rows: Sequence[Mapping[str, Any]], target: str, metric: str) -> bytes:
    """Forest plot of paired differences, zero dashed.

    One row per ``{"label", "estimate", "ci_low", "ci_high"}`` (an estimate of ``None`` is left
    out).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 0.9 + 0.32 * len(rows)))
    for i, row in enumerate(rows):
        value = row.get("estimate")
        if value is None:
            continue
        low = row["ci_low"] if row.get("ci_low") is not None else value
        high = row["ci_high"] if row.get("ci_high") is not None else value
        ax.errorbar(value, i, xerr=[[value - low], [high - value]], fmt="s", color="#0a84ff")
    ax.set_yticks(range(len(rows)), [row["label"] for row in rows], fontsize=7)
    ax.axvline(0.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel(f"paired difference in {metric} on the test patients ({target}), 95 % CI")
    ax.set_ylabel("rung vs the rung below")
    ax.invert_yaxis()
    return _png(fig)


def km_figure(km: Mapping[str, Any], title: str) -> bytes:
    """Kaplan-Meier step curves of the low and high risk groups (days) with the log-rank p."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    colours = {"low": "#0a84ff", "high": "#ff3b30"}
    for name, curve in km.get("curves", {}).items():
        if curve["n"]:
            ax.step(
                curve["time"],
                curve["survival"],
                where="post",
                color=colours.get(name),
                label=f"{name} risk (n={curve['n']})",
            )
    p = km.get("p_value")
    ax.set_title(f"{title}; log-rank p = {p:.3g}" if p is not None else title, fontsize=8)
    ax.set_xlabel("time (days)")
    ax.set_ylabel("event-free probability")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    return _png(fig)


def td_auc_figure(series: Mapping[str, Sequence[tuple[float, float | None]]], target: str) -> bytes:
    """Time-dependent AUC against the horizon (days), one line per model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    for label, points in series.items():
        kept = [(h, v) for h, v in points if v is not None]
        if kept:
            ax.plot(*zip(*kept, strict=True), marker="o", label=label)
    ax.axhline(0.5, color="k", lw=0.8, ls=":")
    ax.set_xlabel("horizon (days)")
    ax.set_ylabel(f"time-dependent AUC ({target})")
    ax.set_ylim(0.2, 1.0)
    ax.legend(fontsize=7)
    return _png(fig)


def roc_pr_figure(curves: Mapping[str, Any], title: str) -> bytes:
    """ROC curve (with the chance diagonal) and precision-recall curve side by side."""
    plt = _pyplot()
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(7.6, 3.4))
    roc.plot(curves["roc"]["fpr"], curves["roc"]["tpr"], color="#0a84ff", drawstyle="steps-post")
    roc.plot([0, 1], [0, 1], color="k", lw=0.8, ls=":", label="chance")
    roc.set_xlabel("1 - specificity (false-positive rate)")
    roc.set_ylabel("sensitivity (true-positive rate)")
    roc.legend(fontsize=7, loc="lower right")
    pr.plot(curves["pr"]["recall"], curves["pr"]["precision"], color="#0a84ff", drawstyle="steps")
    pr.set_xlabel("recall (sensitivity)")
    pr.set_ylabel("precision (positive predictive value)")
    for ax in (roc, pr):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
    fig.suptitle(title, fontsize=8)
    return _png(fig)


def calibration_figure(reliability: Mapping[str, Any], title: str) -> bytes:
    """Reliability curve: observed event rate against the mean predicted probability per bin."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.0, 3.4))
    ax.plot([0, 1], [0, 1], color="k", lw=0.8, ls=":", label="perfect calibration")
    sizes = [12 + 4 * c for c in reliability["count"]]
    ax.plot(reliability["mean_score"], reliability["observed"], color="#0a84ff", lw=1)
    ax.scatter(reliability["mean_score"], reliability["observed"], s=sizes, color="#0a84ff")
    ax.set_xlabel("mean predicted probability (bin)")
    ax.set_ylabel("observed fraction positive")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7, loc="upper left")
    return _png(fig)


def confusion_figure(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str) -> bytes:
    """Confusion matrix heat map with the counts written in the cells (rows: truth)."""
    plt = _pyplot()
    counts = np.asarray(matrix, dtype=int)
    size = 1.6 + 0.55 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 0.8, size))
    image = ax.imshow(counts, cmap="Blues")
    for (i, j), value in np.ndenumerate(counts):
        colour = "white" if value > counts.max() / 2 else "black"
        ax.text(j, i, str(value), ha="center", va="center", color=colour, fontsize=8)
    ax.set_xticks(range(len(classes)), classes, fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=8)
    fig.colorbar(image, ax=ax, label="patients")
    return _png(fig)


def dice_boxplot(per_region: Mapping[str, Sequence[float]], title: str) -> bytes:
    """Box plot of per-case Dice per region, with the cases as jittered points."""
    plt = _pyplot()
    names = list(per_region)
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(names), 3.4))
    ax.boxplot([per_region[n] for n in names], showfliers=False)
    rng = np.random.default_rng(0)
    for i, name in enumerate(names, start=1):
        values = np.asarray(per_region[name], dtype=float)
        ax.scatter(i + rng.uniform(-0.12, 0.12, values.size), values, s=9, color="#0a84ff")
    ax.set_xticks(range(1, len(names) + 1), names, fontsize=8)
    ax.set_xlabel("region")
    ax.set_ylabel("Dice per case")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=8)
    return _png(fig)


def synthesis_panel(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    window: tuple[float, float],
    title: str,
) -> bytes:
    """Real vs synthetic CT, three orthogonal slices through the nodule (or lung) centre.

    One row per patient and kind (real, synthetic); columns: the three planes of the volume's
    array axes; grey window = the model's HU window.
    """
    plt = _pyplot()
    rows = 2 * len(panels)
    fig, axes = plt.subplots(rows, 3, figsize=(6.0, 2.0 * rows), squeeze=False)
    for i, (patient, real, synthetic, labels) in enumerate(panels):
        target = labels == 2 if (labels == 2).any() else labels > 0
        centre = [int(np.median(idx)) for idx in np.nonzero(target)]
        for j, (kind, volume) in enumerate((("real", real), ("synthetic", synthetic))):
            for axis in range(3):
                ax = axes[2 * i + j, axis]
                plane = np.take(volume, centre[axis], axis=axis)
                ax.imshow(plane.T, cmap="gray", vmin=window[0], vmax=window[1], origin="lower")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_xlabel(f"array axis {(axis + 1) % 3}", fontsize=6)
                ax.set_ylabel(f"{patient} {kind}\naxis {(axis + 2) % 3}", fontsize=6)
    fig.suptitle(title, fontsize=8)
    return _png(fig)


def loss_curve(steps: Sequence[int], losses: Sequence[float], title: str) -> bytes:
    """Training loss against the optimiser step."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    ax.plot(steps, losses, color="#0a84ff")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("noise-prediction loss")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=8)
    return _png(fig)
