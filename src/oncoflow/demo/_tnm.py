"""TNM stage of the ``nsclc_mmdls`` demo: categories, stage groups, posteriors and the foci.

The mechanism (module docstring of :mod:`oncoflow.demo.nsclc_mmdls` and docs/demo.md): T from the
primary's largest diameter, N from involved hilar / mediastinal nodes and M from a nodule in the
other lung, N and M drawn from the diameter and the uptake; :func:`metastatic_foci` paints them,
:func:`stage_posteriors` gives the oracles' posteriors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from oncoflow.demo._common import Grid, logit_inv
from oncoflow.demo._phantoms import LESION, NECROSIS, SOFT, Scene, lung_point


def _z_r(radius: float) -> float:
    return (np.log(radius) - 2.752) / 0.40


def _z_u(suv: float) -> float:
    return (np.log(suv) - np.log(7.0)) / 0.55


def major_diameter(latent: dict[str, Any]) -> float:
    """True largest diameter of the primary (mm): ``d = 2 r e^(2/3)``.

    ``r`` is the volume-equivalent radius and ``e`` the elongation of the major axis.
    """
    return float(2.0 * latent["radius"] * latent["elongation"] ** (2.0 / 3.0))


def _z_d(diameter: np.ndarray | float) -> np.ndarray:
    return (np.log(diameter) - np.log(30.0)) / 0.35


def tnm_probabilities(
    diameter: np.ndarray | float, z_u: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``P(N >= 1)``, ``P(N = 2 | N >= 1)`` and ``P(M = 1)`` given the diameter and uptake.

    Larger and more FDG-avid primaries spread more often (module docstring for the weights).
    """
    z_d = _z_d(diameter)
    p_node = logit_inv(-0.5 + 1.0 * z_d + 0.8 * z_u)
    p_n2 = logit_inv(-0.3 + 0.5 * z_d + 0.6 * z_u)
    p_m = logit_inv(-2.3 + 0.6 * z_d + 0.9 * z_u)
    return p_node, p_n2, p_m


def stage_group(
    diameter: np.ndarray | float, n: np.ndarray | int, m: np.ndarray | int
) -> np.ndarray:
    """Stage group index (0..3 = I..IV) from T (the diameter, mm), N (0..2) and M (0, 1).

    ``M1 -> IV``; ``N2 -> III``; ``N1 -> II`` (T1-T2, d <= 50 mm) or ``III`` (T3);
    ``N0 -> I`` (d <= 40 mm: T1, T2a) or ``II`` (T2b, T3). The 8th-edition groups, collapsed
    to I-IV, without T4 (invasion) and N3, which the demo does not draw.
    """
    d, n, m = np.asarray(diameter, dtype=float), np.asarray(n), np.asarray(m)
    n0 = np.where(d <= 40.0, 0, 1)
    n1 = np.where(d <= 50.0, 1, 2)
    return np.where(m > 0, 3, np.where(n >= 2, 2, np.where(n == 1, n1, n0))).astype(int)


def tnm(latent: dict[str, Any]) -> tuple[int, int]:
    """The patient's N (0..2) and M (0, 1) categories, from its latent draws."""
    if "n_category" in latent:  # set by the tables after a rebalance
        return int(latent["n_category"]), int(latent["m_category"])
    p_node, p_n2, p_m = tnm_probabilities(major_diameter(latent), _z_u(latent["suv_max"]))
    n = 0 if latent["node_draw"] >= p_node else (2 if latent["n2_draw"] < p_n2 else 1)
    return n, int(latent["m_draw"] < p_m)


_PRIOR_DRAWS = 20000


def _prior_sample() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draws of (d, z_r, z_u) from the generating prior (seeded: the oracle is deterministic)."""
    rng = np.random.default_rng(20261204)
    radius = rng.uniform(6, 28, _PRIOR_DRAWS)
    elongation = rng.uniform(1.0, 1.4, _PRIOR_DRAWS)
    suv = np.clip(np.exp(rng.normal(np.log(7.0), 0.55, _PRIOR_DRAWS)), 2.0, 20.0)
    diameter = 2.0 * radius * elongation ** (2.0 / 3.0)
    return diameter, _z_r(radius), _z_u(suv)


def stage_posteriors(
    reported_mm: np.ndarray, n: np.ndarray | None = None, m: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``P(stage | reported diameter [, N, M])`` (n, 4) and ``E[z_r | reported diameter]`` (n,).

    Monte Carlo over the prior (:data:`_PRIOR_DRAWS` draws of radius, elongation and uptake),
    each draw weighted by the likelihood of the reported diameter (``N(d, 2^2)`` mm, the
    measurement error of ``tumour_diameter_mm``) and, when ``n`` and ``m`` are given, by
    ``P(N, M | d, z_u)``. Without them, N and M are summed out: what the tabular baseline
    (clinical table + mask size) knows.
    """
    d, z_r, z_u = _prior_sample()
    p_node, p_n2, p_m = tnm_probabilities(d, z_u)
    p_n = np.stack([1.0 - p_node, p_node * (1.0 - p_n2), p_node * p_n2], axis=1)
    p_mm = np.stack([1.0 - p_m, p_m], axis=1)
    stages = np.stack(
        [[stage_group(d, nn, mm) for mm in (0, 1)] for nn in (0, 1, 2)]
    )  # (3, 2, draws)
    post = np.zeros((len(reported_mm), 4))
    mean_z_r = np.zeros(len(reported_mm))
    for i, rep in enumerate(np.asarray(reported_mm, dtype=float)):
        w = np.exp(-0.5 * ((rep - d) / 2.0) ** 2)
        mean_z_r[i] = float(w @ z_r / w.sum())
        if n is not None and m is not None:
            w = w * p_n[:, int(n[i])] * p_mm[:, int(m[i])]
            for k in range(4):
                post[i, k] = w[stages[int(n[i]), int(m[i])] == k].sum()
        else:
            for nn in range(3):
                for mm in range(2):
                    joint = w * p_n[:, nn] * p_mm[:, mm]
                    for k in range(4):
                        post[i, k] += joint[stages[nn, mm] == k].sum()
        post[i] /= post[i].sum()
    return post, mean_z_r


MEDIASTINAL_STATIONS: tuple[tuple[float, float, float], ...] = (
    (-20.0, 15.0, 50.0),  # right paratracheal
    (0.0, 28.0, 15.0),  # subcarinal
    (20.0, 5.0, 60.0),  # aortopulmonary window
)
"""Mediastinal node centres (x, y scaled by the body size; z in mm) of the chest phantom."""

_HILAR_CANDIDATES = [(32.0, y, z) for y in (-10.0, 10.0, 30.0) for z in (-25.0, 0.0, 20.0)]
"""Ipsilateral hilar node centres (x mirrored to the primary's side), at least 30 mm from the
mediastinal stations so that two nodes never merge into one focus."""


def metastatic_foci(
    grid: Grid, scene: Scene, latent: dict[str, Any], rng: np.random.Generator
) -> tuple[list[tuple[np.ndarray, float]], np.ndarray]:
    """Paint the involved nodes (N) and the contralateral lung metastasis (M) into ``scene``.

    N1: one ipsilateral hilar node, at the candidate hilar position farthest from the primary;
    N2: that node and one or two mediastinal ones (:data:`MEDIASTINAL_STATIONS`). Nodes are
    spheres of radius ``U(8, 11)`` mm and SUV ``U(6, 12)``, soft tissue on CT. M1: a nodule of
    radius ``U(7, 10)`` mm in the other lung, SUV ``max(4, 0.7 u)``, soft tissue on CT and part
    of the lung label (the filled lung contour).

    Returns:
        The foci for :func:`pet_suv` and the voxels of the lung metastasis (for the mask).
    """
    from scipy import ndimage

    n, m = tnm(latent)
    x, y, z = grid.coords()
    s = latent["body_scale"]
    side = 1 if latent["lesion_centre"][0] > 0 else -1
    primary = (scene.tissue == LESION) | (scene.tissue == NECROSIS)
    spacing_zyx = (grid.spacing[2], grid.spacing[1], grid.spacing[0])
    away = ndimage.distance_transform_edt(~primary, sampling=spacing_zyx)
    centres: list[tuple[float, float, float]] = []
    if n >= 1:
        hilar = [(side * cx * s, cy * s, cz) for cx, cy, cz in _HILAR_CANDIDATES]
        idx = [grid_index(grid, c) for c in hilar]
        centres.append(hilar[int(np.argmax([away[i] for i in idx]))])
    if n >= 2:
        k = int(latent["mediastinal_nodes"])
        for cx, cy, cz in MEDIASTINAL_STATIONS[:k]:
            centres.append((cx * s, cy * s, cz))
    foci = []
    for c in centres:
        ball = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= rng.uniform(8, 11) ** 2
        scene.tissue[ball & ~primary] = SOFT
        foci.append((ball & ~primary, float(rng.uniform(6, 12))))
    nodule = np.zeros(grid.shape, dtype=bool)
    if m:
        c = lung_point(-side, latent["metastasis_direction"], s)
        nodule = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= rng.uniform(7, 10) ** 2
        scene.tissue[nodule] = SOFT
        foci.append((nodule, max(4.0, 0.7 * latent["suv_max"])))
    return foci, nodule


def grid_index(grid: Grid, point: tuple[float, float, float]) -> tuple[int, int, int]:
    """Nearest (z, y, x) voxel of a phantom point (mm), clipped to the grid."""
    out = []
    for a in (2, 1, 0):
        first = grid.origin[a] - grid.centre[a]
        i = round((point[a] - first) / grid.spacing[a])
        out.append(int(np.clip(i, 0, grid.size[a] - 1)))
    return out[0], out[1], out[2]


def _categories_for(stage: int, diameter: float, n: int, m: int) -> tuple[int, int]:
    """N and M closest to ``(n, m)`` that give ``stage`` at this diameter (after a rebalance).

    Stage I needs ``d <= 40`` mm; a larger primary moved to stage I keeps N0 M0 and the
    :func:`stage_group` of the tables then stays II (logged by the caller's recount).
    """
    if stage == 3:
        return n, 1
    if stage == 2:
        return (n, 0) if (n == 1 and diameter > 50.0) else (2, 0)
    if stage == 1:
        if diameter <= 40.0:
            return 1, 0
        return (n, 0) if (n == 1 and diameter <= 50.0) else (0, 0)
    return 0, 0
