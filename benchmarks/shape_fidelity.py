"""Does the elongation of a predicted lesion track the lesion's? Mask rim vs image contrast.

The refit head of pancreas_multitask reads the elongation of the network's predicted lesion
(:func:`oncoflow.lesions.statistics.elongation` of its largest component). On the validation
cases of the science-scale demo that number tracks the given lesion's elongation at Spearman
0.50 / 0.67 only (seeds 43 / 20261123), against 0.93-0.99 for the median and robust SD
(``benchmarks/statistics_gap.json``): the predicted lesion is rounder than the lesion, it misses
the tips of an elongated one. :func:`contrast_elongation` (defined here: the rule below rejected
it, so it never went into the library) reads the elongation off the image's contrast in the
predicted lesion grown by one voxel instead of off the mask's rim.

This benchmark reads, for the validation cases of each fold of kept ``pancreas_multitask.py``
trees (the CT as the prediction read it, the mask it wrote; no network runs, no class label is
read), both estimates on the predicted lesion and the elongation of the given lesion, and
reports their Spearman correlation with the latter: how faithfully each measures the planted
shape. Test cases are never read.

Rule fixed before the runs (committed 2026-12-07 while seeds 5 and 7 were training; the
estimator was designed on the validation cases of seeds 20261123 and 43, ``--seen``): wire
``contrast_elongation`` into the head's statistics (behind a setting, for its own adoption rule
on the subtype) when on the validation cases of *each* unseen seed its Spearman correlation with
the given lesion's elongation exceeds that of the mask's elongation by at least 0.05.

Writes ``benchmarks/shape_fidelity.json`` and the README block ``shape_fidelity``.

Usage:
    python benchmarks/shape_fidelity.py --seen 20261123 --seen 43 20261123:/tmp/pm2026 \
        43:/tmp/pm43 5:/tmp/pm5 7:/tmp/pm7
    python benchmarks/shape_fidelity.py --render-only
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

from head_statistics import kept_trees, study_settings, tree_folds  # noqa: E402
from readme_block import replace_block  # noqa: E402
from statistics_gap import subset_cases  # noqa: E402

from oncoflow.lesions.statistics import elongation, largest_component  # noqa: E402
from oncoflow.segmentation.lesion_statistics import lesion_label  # noqa: E402

OUT = HERE / "shape_fidelity.json"
ESTIMATES = ("mask", "contrast")
MARGIN = 0.05
"""The rule's least gain in Spearman correlation on every unseen seed."""


def weighted_elongation(weights: np.ndarray, spacing: Sequence[float]) -> float:
    """``sqrt(lambda_max / lambda_min)`` of the ``w``-weighted covariance of voxel positions (mm).

    ``C = sum_v w_v (p_v - mu)(p_v - mu)^T / sum_v w_v`` over the voxels with ``w_v > 0``, ``mu``
    the weighted centroid; with ``w`` 0/1 it is :func:`oncoflow.lesions.statistics.elongation`.
    NaN below 4 voxels or for a flat region.
    """
    inside = np.asarray(weights) > 0
    if np.count_nonzero(inside) < 4:
        return float("nan")
    points = np.argwhere(inside) * np.asarray(spacing, dtype=float)
    w = np.asarray(weights, dtype=float)[inside]
    centred = points - (points * w[:, None]).sum(axis=0) / w.sum()
    eigen = np.linalg.eigvalsh((centred.T * w) @ centred / w.sum())
    return float(np.sqrt(eigen[-1] / eigen[0])) if eigen[0] > 0 else float("nan")


def contrast_elongation(
    image: np.ndarray, segmentation: np.ndarray, label: int, spacing: Sequence[float]
) -> float:
    """Elongation of a segmented lesion read off the image's contrast, not the mask's rim alone.

    A network's predicted lesion is rounder than the lesion: it misses the tips of an elongated
    one, so the elongation of the mask (:func:`elongation`) is compressed. Here each voxel of the
    lesion's largest component grown by one voxel (6-connectivity, inside the segmented organ
    grown by one voxel) counts by how lesion-like its intensity is,

        w_v = clip((x_v - m_o) / (m_l - m_o), 0, 1),

    with ``m_l`` the median of the component and ``m_o`` the median of the other labels of the
    segmentation (the organ around the lesion); the elongation is that of the ``w``-weighted
    covariance. It needs no threshold and works for a darker or a brighter lesion. Falls back to
    the component's own elongation when the segmentation has no other label or the two medians
    are within 1 unit.

    Args:
        image: Intensities (HU for CT), ``(slices, rows, columns)``.
        segmentation: Label map on the image's grid (0 = background).
        label: The lesion's label.
        spacing: Voxel spacing in mm along the array's axes.

    Returns:
        The elongation, NaN for a lesion of fewer than 4 voxels.
    """
    from scipy import ndimage

    segmentation = np.asarray(segmentation)
    lesion = largest_component(segmentation == label)
    organ = (segmentation > 0) & (segmentation != label)
    if np.count_nonzero(lesion) < 4:
        return float("nan")
    image = np.asarray(image, dtype=np.float64)
    m_lesion = float(np.median(image[lesion]))
    m_organ = float(np.median(image[organ])) if organ.any() else m_lesion
    if abs(m_lesion - m_organ) < 1.0:
        return elongation(lesion, spacing)
    grown = ndimage.binary_dilation(lesion) & ndimage.binary_dilation(segmentation > 0)
    weights = np.clip((image - m_organ) / (m_lesion - m_organ), 0.0, 1.0) * grown
    return weighted_elongation(weights, spacing)


def measure(tree: Path) -> dict[str, Any]:
    """Spearman of each estimate with the given lesion's elongation, validation cases only."""
    settings = study_settings()
    label = lesion_label(settings.regions)
    rows = []
    for k in tree_folds(tree, settings):
        for case, _, data, properties, masks in subset_cases(tree, settings, f"fold_{k}"):
            spacing = properties["spacing"]
            predicted = masks["predicted"]
            rows.append(
                {
                    "case_id": case,
                    "given": elongation(masks["given"] == label, spacing),
                    "mask": elongation(largest_component(predicted == label), spacing),
                    "contrast": contrast_elongation(data[0], predicted, label, spacing),
                }
            )
    frame = pd.DataFrame(rows).dropna()
    return {
        "validation_cases": len(frame),
        "spearman": {
            e: round(float(frame[e].corr(frame["given"], method="spearman")), 4) for e in ESTIMATES
        },
    }


def decide(trees: dict[str, Any], seen: list[str]) -> bool:
    """The rule: the contrast estimate gains at least :data:`MARGIN` on every unseen seed."""
    unseen = [t["spearman"] for seed, t in trees.items() if seed not in seen]
    return bool(unseen) and all(s["contrast"] - s["mask"] >= MARGIN for s in unseen)


def table(result: dict[str, Any]) -> str:
    """The README block."""
    seen = result["seen"]
    args = "".join(f"--seen {s} " for s in seen) + " ".join(f"{s}:<tree>" for s in result["trees"])
    lines = [
        "Spearman correlation of the predicted lesion's elongation with the given lesion's, "
        f"validation cases (`python benchmarks/shape_fidelity.py {args}`, "
        "`benchmarks/shape_fidelity.json`):",
        "",
        "| seed | validation cases | mask rim (today) | image contrast |",
        "|---|---|---|---|",
    ]
    for seed, tree in result["trees"].items():
        mark = " (seen)" if seed in seen else ""
        rho = tree["spearman"]
        lines.append(
            f"| {seed}{mark} | {tree['validation_cases']} | {rho['mask']:.3f} | "
            f"{rho['contrast']:.3f} |"
        )
    verdict = "yes" if result["wire"] else "no"
    lines += ["", f"`contrast_elongation` wired in by the rule (+{MARGIN} on every unseen seed): "]
    lines[-1] += f"{verdict}."
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure the kept trees (or render the JSON); write the JSON and the README block."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", help="SEED:PATH of kept pancreas_multitask.py trees")
    parser.add_argument("--seen", action="append", default=[], help="a seed it was designed on")
    parser.add_argument("--render-only", action="store_true", help="README block from the JSON")
    args = parser.parse_args(argv)
    if args.render_only:
        replace_block(REPO / "README.md", "shape_fidelity", table(json.loads(OUT.read_text())))
        return 0
    trees = {seed: measure(tree) for seed, tree in kept_trees(args.trees, parser).items()}
    result = {"trees": trees, "seen": args.seen, "wire": decide(trees, args.seen)}
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    replace_block(REPO / "README.md", "shape_fidelity", table(result))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
