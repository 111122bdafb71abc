"""Anatomical phantoms (abdomen, chest) as tissue-label volumes, and their intensities.

A scene is rendered once per patient and time point on the image grid (voxel centres, phantom
coordinates in mm, LPS: +x = patient left, +y = posterior, +z = superior); each contrast phase,
MR sequence or PET image is then a lookup of tissue -> intensity plus the lesion texture, followed
by the site's scanner model (:mod:`oncoflow.demo._common`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from oncoflow.demo._common import (
    SCANNERS,
    Grid,
    ellipsoid,
    make_grid,
    random_rotation,
    smooth_noise,
    tube_distance,
)

# tissue codes
AIR, FAT, SOFT, MUSCLE, BONE, CORTEX, LIVER, SPLEEN, KIDNEY, AORTA, VEIN = range(11)
PANCREAS, LESION, GAS, LUNG, VESSEL, HEART, NECROSIS, DISC, FLUID = range(11, 20)
N_TISSUES = 20

CT_HU: dict[str, dict[int, float]] = {
    # tissue -> HU per contrast phase (typical literature values, portal-venous protocol)
    "native": {AIR: -1000, FAT: -100, SOFT: 30, MUSCLE: 50, BONE: 250, CORTEX: 750, LIVER: 58,
               SPLEEN: 48, KIDNEY: 32, AORTA: 42, VEIN: 40, PANCREAS: 42, LESION: 38, GAS: -950,
               LUNG: -860, VESSEL: 40, HEART: 42, NECROSIS: 15, DISC: 80, FLUID: 8},
    "arterial": {AIR: -1000, FAT: -100, SOFT: 45, MUSCLE: 55, BONE: 250, CORTEX: 750, LIVER: 75,
                 SPLEEN: 125, KIDNEY: 190, AORTA: 320, VEIN: 95, PANCREAS: 128, LESION: 62,
                 GAS: -950, LUNG: -860, VESSEL: 250, HEART: 250, NECROSIS: 18, DISC: 82,
                 FLUID: 10},
    "venous": {AIR: -1000, FAT: -100, SOFT: 60, MUSCLE: 60, BONE: 255, CORTEX: 750, LIVER: 112,
               SPLEEN: 118, KIDNEY: 175, AORTA: 170, VEIN: 160, PANCREAS: 105, LESION: 72,
               GAS: -950, LUNG: -860, VESSEL: 160, HEART: 160, NECROSIS: 20, DISC: 85,
               FLUID: 12},
    "delayed": {AIR: -1000, FAT: -100, SOFT: 55, MUSCLE: 58, BONE: 255, CORTEX: 750, LIVER: 92,
                SPLEEN: 95, KIDNEY: 140, AORTA: 120, VEIN: 118, PANCREAS: 78, LESION: 80,
                GAS: -950, LUNG: -860, VESSEL: 120, HEART: 120, NECROSIS: 22, DISC: 85,
                FLUID: 15},
}  # fmt: skip
"""Mean HU of each tissue per CT phase, before the site's scanner model."""

MR_AU: dict[str, dict[int, float]] = {
    "T1": {AIR: 8, FAT: 900, SOFT: 380, MUSCLE: 400, BONE: 620, CORTEX: 30, LIVER: 520,
           SPLEEN: 400, KIDNEY: 430, AORTA: 150, VEIN: 160, PANCREAS: 560, LESION: 330,
           GAS: 8, LUNG: 20, VESSEL: 150, HEART: 300, NECROSIS: 190, DISC: 300, FLUID: 120},
    "T2": {AIR: 8, FAT: 620, SOFT: 300, MUSCLE: 200, BONE: 450, CORTEX: 20, LIVER: 240,
           SPLEEN: 460, KIDNEY: 520, AORTA: 90, VEIN: 100, PANCREAS: 330, LESION: 500,
           GAS: 8, LUNG: 15, VESSEL: 90, HEART: 250, NECROSIS: 950, DISC: 700, FLUID: 1100},
    "T1V": {AIR: 8, FAT: 850, SOFT: 600, MUSCLE: 520, BONE: 700, CORTEX: 30, LIVER: 860,
            SPLEEN: 820, KIDNEY: 1000, AORTA: 1200, VEIN: 1150, PANCREAS: 780, LESION: 660,
            GAS: 8, LUNG: 25, VESSEL: 1200, HEART: 900, NECROSIS: 230, DISC: 320, FLUID: 130},
}  # fmt: skip
"""Mean MR signal (arbitrary units) per tissue and sequence (T1V = portal-venous T1 + contrast)."""

PET_SUV: dict[int, float] = {
    AIR: 0.0, FAT: 0.35, SOFT: 0.9, MUSCLE: 0.75, BONE: 1.4, CORTEX: 0.9, LIVER: 2.1,
    SPLEEN: 1.8, KIDNEY: 2.5, AORTA: 1.7, VEIN: 1.7, PANCREAS: 1.4, LESION: 1.0, GAS: 0.0,
    LUNG: 0.45, VESSEL: 1.6, HEART: 3.0, NECROSIS: 0.6, DISC: 1.0, FLUID: 0.4,
}  # fmt: skip
"""Background SUV per tissue; the lesion value is replaced by the patient's uptake."""


@dataclass
class Scene:
    """A rendered phantom on one grid.

    Attributes:
        grid: The image grid.
        tissue: (z, y, x) uint8 tissue codes.
        texture: (z, y, x) float32 unit-variance correlated field used inside the lesion.
        lesion_core: (z, y, x) float32 in [0, 1]: 1 at the lesion centre, 0 at its border
            (used for radial uptake / enhancement profiles).
    """

    grid: Grid
    tissue: np.ndarray
    texture: np.ndarray
    lesion_core: np.ndarray

    def lookup(self, table: dict[int, float]) -> np.ndarray:
        """Return the (z, y, x) float32 map ``table[tissue]``."""
        lut = np.zeros(N_TISSUES, dtype=np.float32)
        for code, value in table.items():
            lut[code] = value
        return lut[self.tissue]


@dataclass(frozen=True)
class Lesion:
    """A lesion in phantom coordinates.

    Attributes:
        centre: Centre (x, y, z), mm.
        radius_mm: Volume-equivalent sphere radius, mm.
        elongation: Axis ratio; semi-axes are ``r * (e, 1, 1/e)^(1/... )`` normalised to keep
            the volume (``a = r e^(2/3)``, ``b = c = r e^(-1/3)``).
        rotation: 3x3 orientation of the semi-axes.
        lobulation: Amplitude of the smooth boundary perturbation (0 = ellipsoid).
        necrosis: Volume fraction of the necrotic core (0..0.9).
    """

    centre: tuple[float, float, float]
    radius_mm: float
    elongation: float = 1.0
    rotation: tuple[tuple[float, ...], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    lobulation: float = 0.0
    necrosis: float = 0.0

    def semi_axes(self) -> tuple[float, float, float]:
        """Return the ellipsoid semi-axes (mm) with the sphere's volume."""
        e = max(self.elongation, 1e-3)
        return (
            self.radius_mm * e ** (2.0 / 3.0),
            self.radius_mm * e ** (-1.0 / 3.0),
            self.radius_mm * e ** (-1.0 / 3.0),
        )


def _paint_lesion(
    tissue: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    lesion: Lesion,
    rng: np.random.Generator,
    grid: Grid,
) -> np.ndarray:
    """Paint ``LESION`` (and ``NECROSIS``) into ``tissue``; return the radial core profile."""
    rot = np.asarray(lesion.rotation, dtype=float)
    rho2 = ellipsoid(x, y, z, lesion.centre, lesion.semi_axes(), rot)
    rho = np.sqrt(rho2)
    if lesion.lobulation > 0:
        voxel = min(grid.spacing)
        sigma = max(0.35 * lesion.radius_mm / voxel, 0.8)
        rho = rho / (1.0 + lesion.lobulation * smooth_noise(rng, x.shape, sigma))
    inside = rho <= 1.0
    if not inside.any():  # always keep at least the voxel nearest to the centre
        inside = rho <= rho.min()
    tissue[inside] = LESION
    if lesion.necrosis > 0:
        tissue[inside & (rho <= lesion.necrosis ** (1.0 / 3.0))] = NECROSIS
    return np.clip(1.0 - rho, 0.0, 1.0).astype(np.float32)


def _torso(
    x: np.ndarray,
    y: np.ndarray,
    shape: tuple[int, ...],
    s: float,
    ellipse: tuple[float, float, float],
    wall: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Tissue map of a body cross-section: subcutaneous fat around soft tissue, air outside.

    The body is the ellipse ``(x / (a s))^2 + ((y - y0) / (b s))^2 <= 1`` (``ellipse = (a, b,
    y0)`` in mm, ``s`` the patient's size factor); the soft tissue inside it has half-axes
    shortened by the fat wall ``wall = (dx, dy)`` mm.

    Returns:
        The tissue labels and the mask inside the fat wall.
    """
    a, b, y0 = ellipse
    t = np.full(shape, AIR, dtype=np.uint8)
    body = ((x / (a * s)) ** 2 + ((y - y0) / (b * s)) ** 2) <= 1
    inner = ((x / (a * s - wall[0])) ** 2 + ((y - y0) / (b * s - wall[1])) ** 2) <= 1
    t[body] = FAT
    t[inner] = SOFT
    return t, inner


def abdomen(
    grid: Grid,
    rng: np.random.Generator,
    *,
    body_scale: float,
    pancreas_shift: tuple[float, float, float],
    lesion: Lesion | None,
) -> Scene:
    """Render an abdominal phantom at the level of the pancreas.

    Body with subcutaneous and visceral fat, bowel gas, paraspinal and psoas muscles, vertebrae
    with discs, aorta, IVC, liver, spleen, stomach, kidneys, pancreas (a tube from head to tail)
    and an optional lesion (painted last).

    Args:
        grid: Image grid.
        rng: Pixel generator (visceral fat / gas pattern, lesion texture, lobulation).
        body_scale: Patient size factor (about 0.9-1.1).
        pancreas_shift: Patient-specific offset of the pancreas (mm).
        lesion: The lesion or ``None``.

    Returns:
        The scene.
    """
    x, y, z = grid.coords()
    s = body_scale
    t, inner = _torso(x, y, grid.shape, s, (140, 105, 10), (18, 15))
    visceral = smooth_noise(rng, grid.shape, 1.6)
    t[inner & (visceral > 0.9)] = FAT
    t[inner & (visceral < -2.3) & (y < 0)] = GAS
    for sx in (-1, 1):
        t[ellipsoid(x, y, z, (sx * 40 * s, 85 * s, 0), (28 * s, 20 * s, 1e4)) <= 1] = MUSCLE
        t[(ellipsoid(x, y, z, (sx * 42 * s, 45 * s, -60), (16 * s, 16 * s, 70)) <= 1)] = MUSCLE
    t[ellipsoid(x, y, z, (-80 * s, -5 * s, 40), (72 * s, 80 * s, 75)) <= 1] = LIVER
    t[ellipsoid(x, y, z, (88 * s, 40 * s, 35), (30 * s, 45 * s, 45)) <= 1] = SPLEEN
    stomach = ellipsoid(x, y, z, (50 * s, -40 * s, 45), (45 * s, 35 * s, 35)) <= 1
    t[stomach] = FLUID
    t[stomach & (y < -40 * s - 12)] = GAS
    for sx, zc in ((-1, -40), (1, -25)):
        t[ellipsoid(x, y, z, (sx * 70 * s, 55 * s, zc), (26 * s, 30 * s, 50)) <= 1] = KIDNEY
    t[((x - 12 * s) ** 2 + (y - 28 * s) ** 2) <= (11 * s) ** 2] = AORTA
    t[((x + 25 * s) ** 2 + (y - 24 * s) ** 2) <= (11 * s) ** 2] = VEIN
    r2 = x**2 + (y - 62 * s) ** 2
    spine = r2 <= (22 * s) ** 2
    t[spine] = CORTEX
    t[r2 <= (19 * s) ** 2] = BONE
    t[spine & (np.cos(2 * np.pi * z / 32.0) < -0.8)] = DISC
    points = np.array(
        [(-45, -10, -12), (-20, -18, -6), (5, -20, 0), (35, -10, 6), (60, 5, 10), (80, 20, 14)],
        dtype=float,
    )
    points = points * np.array([s, s, 1.0]) + np.asarray(pancreas_shift)
    radii = np.array([15, 12, 10, 9, 8, 7], dtype=float) * s
    t[tube_distance(x, y, z, points, radii) <= 1] = PANCREAS
    core = np.zeros(grid.shape, dtype=np.float32)
    if lesion is not None:
        core = _paint_lesion(t, x, y, z, lesion, rng, grid)
    texture = smooth_noise(rng, grid.shape, 0.9)
    return Scene(grid=grid, tissue=t, texture=texture, lesion_core=core)


def pancreas_point(frac: float, body_scale: float, shift: tuple[float, float, float]) -> tuple:
    """Return the point at fraction ``frac`` (0 = head, 1 = tail) along the pancreas axis (mm)."""
    points = np.array(
        [(-45, -10, -12), (-20, -18, -6), (5, -20, 0), (35, -10, 6), (60, 5, 10), (80, 20, 14)],
        dtype=float,
    )
    points = points * np.array([body_scale, body_scale, 1.0]) + np.asarray(shift)
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    target = frac * seg.sum()
    k = int(np.searchsorted(np.cumsum(seg), target))
    k = min(k, len(seg) - 1)
    before = float(np.cumsum(seg)[k - 1]) if k > 0 else 0.0
    u = (target - before) / seg[k]
    p = points[k] + u * (points[k + 1] - points[k])
    return (float(p[0]), float(p[1]), float(p[2]))


def pancreas_scene(
    grid: Grid,
    rng: np.random.Generator,
    latent: dict[str, Any],
    radius_mm: float,
    lobulation: float,
) -> tuple[Scene, np.ndarray]:
    """An abdomen with one pancreatic lesion, and its label map (1 pancreas, 2 lesion).

    Args:
        grid: Voxel grid of the image.
        rng: The patient's generator (drawn from by :func:`abdomen`).
        latent: The patient's latents: ``lesion_frac`` (0 = head, 1 = tail), ``body_scale``,
            ``pancreas_shift`` (mm), ``elongation``, ``rotation``.
        radius_mm: Lesion radius (mm).
        lobulation: Relative amplitude of the lesion's surface lobes.
    """
    centre = pancreas_point(latent["lesion_frac"], latent["body_scale"], latent["pancreas_shift"])
    lesion = Lesion(
        centre=centre,
        radius_mm=radius_mm,
        elongation=latent["elongation"],
        rotation=latent["rotation"],
        lobulation=lobulation,
    )
    scene = abdomen(
        grid,
        rng,
        body_scale=latent["body_scale"],
        pancreas_shift=latent["pancreas_shift"],
        lesion=lesion,
    )
    mask = np.zeros(grid.shape, dtype=np.uint8)
    mask[scene.tissue == PANCREAS] = 1
    mask[(scene.tissue == LESION) | (scene.tissue == NECROSIS)] = 2
    return scene, mask


def liver_point(u: np.ndarray, body_scale: float) -> tuple[float, float, float]:
    """Map ``u`` in the unit ball to a point inside the liver ellipsoid (mm)."""
    s = body_scale
    c = np.array([-80 * s, -5 * s, 40.0])
    a = np.array([72 * s, 80 * s, 75.0])
    p = c + np.asarray(u, dtype=float) * a
    return (float(p[0]), float(p[1]), float(p[2]))


LUNG_CENTRES = {-1: (-80.0, 5.0, 10.0), 1: (80.0, 5.0, 10.0)}
LUNG_SEMI = {-1: (60.0, 78.0, 115.0), 1: (55.0, 76.0, 110.0)}


def lung_point(side: int, u: np.ndarray, body_scale: float) -> tuple[float, float, float]:
    """Map ``u`` in the unit ball to a point inside the right (-1) or left (+1) lung (mm)."""
    c = np.array(LUNG_CENTRES[side]) * np.array([body_scale, body_scale, 1.0])
    a = np.array(LUNG_SEMI[side]) * np.array([body_scale, body_scale, 1.0])
    p = c + np.asarray(u, dtype=float) * a
    return (float(p[0]), float(p[1]), float(p[2]))


def chest(
    grid: Grid,
    rng: np.random.Generator,
    *,
    body_scale: float,
    lesion: Lesion | None,
) -> Scene:
    """Render a thoracic phantom with an optional lesion (nodule / tumour).

    Body, fat, pectoral muscles, lungs with vessels, heart, mediastinum, aorta, trachea, spine
    and ribs.

    Args:
        grid: Image grid.
        rng: Pixel generator (vessel tree, rib phase, lesion texture).
        body_scale: Patient size factor (about 0.9-1.05).
        lesion: The lesion or ``None``.

    Returns:
        The scene.
    """
    x, y, z = grid.coords()
    s = body_scale
    t, _ = _torso(x, y, grid.shape, s, (155, 110, 5), (15, 14))
    for sx in (-1, 1):
        t[ellipsoid(x, y, z, (sx * 70 * s, -80 * s, 0), (55 * s, 14 * s, 1e4)) <= 1] = MUSCLE
    ring = (((x / (150 * s - 20)) ** 2 + ((y - 5) / (105 * s - 18)) ** 2) <= 1) & ~(
        ((x / (150 * s - 28)) ** 2 + ((y - 5) / (105 * s - 26)) ** 2) <= 1
    )
    phase = float(rng.uniform(0, 2 * np.pi))
    angle = np.arctan2(y, x)
    t[ring & (np.cos(2 * np.pi * z / 26.0 + phase + 2.0 * angle) > 0.55)] = CORTEX
    lungs = np.zeros(grid.shape, dtype=bool)
    for side in (-1, 1):
        c = np.array(LUNG_CENTRES[side]) * np.array([s, s, 1.0])
        a = np.array(LUNG_SEMI[side]) * np.array([s, s, 1.0])
        lungs |= ellipsoid(x, y, z, c, a) <= 1
    t[lungs] = LUNG
    f1 = smooth_noise(rng, grid.shape, 1.8)
    f2 = smooth_noise(rng, grid.shape, 1.8)
    t[lungs & (np.abs(f1) < 0.16) & (np.abs(f2) < 0.16)] = VESSEL
    for side in (-1, 1):
        hilum = np.array([side * 38 * s, 8 * s, 15.0])
        for direction in ((1.0, -0.5, 0.6), (1.0, 0.4, -0.7), (0.8, 0.9, 0.2)):
            d = np.array(direction) * np.array([side, 1.0, 1.0])
            tip = hilum + 60 * s * d / np.linalg.norm(d)
            pts = np.stack([hilum, tip])
            t[lungs & (tube_distance(x, y, z, pts, np.array([5.0, 1.5])) <= 1)] = VESSEL
    t[(np.abs(x) < 28 * s) & (y > -70 * s) & (y < 65 * s) & (z > -40)] = SOFT
    t[ellipsoid(x, y, z, (20 * s, -30 * s, -65), (62 * s, 52 * s, 55)) <= 1] = HEART
    t[((x - 25 * s) ** 2 + (y - 55 * s) ** 2 <= (12 * s) ** 2)] = AORTA
    t[((x - 5 * s) ** 2 + (y + 15 * s) ** 2 <= (14 * s) ** 2) & (z > 10)] = AORTA
    t[(x**2 + (y - 20 * s) ** 2 <= (9 * s) ** 2) & (z > 30)] = GAS
    r2 = x**2 + (y - 88 * s) ** 2
    spine = r2 <= (20 * s) ** 2
    t[spine] = CORTEX
    t[r2 <= (17 * s) ** 2] = BONE
    t[spine & (np.cos(2 * np.pi * z / 28.0) < -0.8)] = DISC
    core = np.zeros(grid.shape, dtype=np.float32)
    if lesion is not None:
        core = _paint_lesion(t, x, y, z, lesion, rng, grid)
    texture = smooth_noise(rng, grid.shape, 0.9)
    return Scene(grid=grid, tissue=t, texture=texture, lesion_core=core)


def ct_true_hu(
    scene: Scene, phase: str, *, lesion_shift_hu: float = 0.0, texture_hu: float = 0.0
) -> np.ndarray:
    """Return the noise-free HU of a scene in one phase.

    Inside the lesion (and its necrotic core, at half amplitude):
    ``HU = HU_phase(LESION) + lesion_shift_hu + texture_hu * texture``.
    """
    hu = scene.lookup(CT_HU[phase])
    les = scene.tissue == LESION
    hu[les] += lesion_shift_hu + texture_hu * scene.texture[les]
    nec = scene.tissue == NECROSIS
    hu[nec] += 0.5 * texture_hu * scene.texture[nec]
    return hu


CHEST_SIZE = (64, 64, 64)
"""Voxels of the chest phantoms (x, y, z)."""
CHEST_INPLANE_MM = 5.2
"""In-plane spacing of the chest phantoms before the site's scanner scale, mm."""


def lung_lesion(rng: np.random.Generator, radius: float, body_scale: float) -> dict[str, Any]:
    """Draw a lesion position inside one lung and its orientation (latent helper)."""
    side = -1 if rng.random() < 0.55 else 1
    direction = rng.normal(size=3)
    u = direction / np.linalg.norm(direction) * 0.5 * rng.random() ** (1 / 3)
    return {
        "lesion_centre": lung_point(side, u, body_scale),
        "rotation": tuple(tuple(float(v) for v in row) for row in random_rotation(rng)),
        "radius": float(radius),
    }


def chest_scene(
    rng: np.random.Generator, latent: dict[str, Any], site: str, *, lobulation: float
) -> tuple[Grid, Scene]:
    """Lay out the chest phantom of one patient on its site's scanner grid.

    Args:
        rng: The patient's pixel generator.
        latent: Patient latents with ``lesion_centre``, ``radius``, ``elongation``, ``rotation``
            and ``body_scale`` (see :func:`lung_lesion`).
        site: Acquisition site; sets in-plane scale and slice spacing.
        lobulation: Lesion surface lobulation (0 = smooth ellipsoid).

    Returns:
        The image grid and the tissue scene with the lesion painted in.
    """
    scanner = SCANNERS[site]
    grid = make_grid(
        rng,
        size=CHEST_SIZE,
        inplane_mm=CHEST_INPLANE_MM * scanner.inplane_scale,
        slice_mm=scanner.slice_mm,
        table_mm=(0.0, -160.0, -250.0),
    )
    lesion = Lesion(
        centre=latent["lesion_centre"],
        radius_mm=latent["radius"],
        elongation=latent["elongation"],
        rotation=latent["rotation"],
        lobulation=lobulation,
    )
    return grid, chest(grid, rng, body_scale=latent["body_scale"], lesion=lesion)
