"""Pixel data of a DICOM series for :mod:`oncoflow.convert.dicom`.

Decodes the slices into modality values and resamples a sheared or unevenly spaced stack onto an
orthogonal grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from scipy import ndimage

from oncoflow.convert._dicom_geometry import SeriesGeometry
from oncoflow.convert._dicom_headers import header_float
from oncoflow.errors import ConversionError


def _slice_values(path: Path, header: Dataset) -> np.ndarray:
    """Return one slice's values ``stored * RescaleSlope + RescaleIntercept``, (rows, cols)."""
    try:
        ds = pydicom.dcmread(path, force=True)
        stored = ds.pixel_array.astype(np.float64)
    except Exception as exc:
        try:
            img = sitk.ReadImage(str(path), sitk.sitkFloat64)  # GDCM applies the rescale
        except RuntimeError:
            raise ConversionError(
                f"{path.parent}: {path.name}: cannot decode pixel data ({exc})"
            ) from exc
        return sitk.GetArrayFromImage(img).reshape(int(header.Rows), int(header.Columns))
    if stored.ndim != 2:
        raise ConversionError(
            f"{path.parent}: {path.name}: expected one grayscale slice, got pixel array "
            f"of shape {stored.shape}"
        )
    slope = header_float(header, "RescaleSlope")
    intercept = header_float(header, "RescaleIntercept")
    return stored * (1.0 if slope is None else slope) + (intercept or 0.0)


def _resample(
    volume: np.ndarray,
    geom: SeriesGeometry,
    *,
    target_along: np.ndarray,
    extend_in_plane: bool,
    fill: float,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Resample a (possibly sheared / unevenly spaced) stack onto an orthogonal grid.

    Target voxel ``(i, j, m)`` lies at ``IPP_0 + (u0 + i dx) row + (v0 + j dy) col +
    (target_along[m] - along_0) n``. Its fractional source slice is ``f = interp(s, along, k)``;
    the source slices' in-plane offsets are interpolated linearly at ``f``; the value is the
    trilinear interpolation ``(1 - w) B(k0) + w B(k0 + 1)`` of the bilinear samples ``B`` of the
    two neighbouring slices (``w = f - k0``). Points outside the acquired volume get ``fill``.

    Returns:
        ``(array (m, ny, nx), origin (3,), (nx, ny))``.
    """
    n = len(geom.along)
    dx, dy = geom.pixel_spacing
    nx, ny = geom.size
    u0 = v0 = 0.0
    out_nx, out_ny = nx, ny
    if extend_in_plane:
        u_lo, u_hi = float(geom.offsets[:, 0].min()), float(geom.offsets[:, 0].max())
        v_lo, v_hi = float(geom.offsets[:, 1].min()), float(geom.offsets[:, 1].max())
        u0, v0 = u_lo, v_lo
        out_nx = int(np.ceil((u_hi - u_lo) / dx - 1e-6)) + nx
        out_ny = int(np.ceil((v_hi - v_lo) / dy - 1e-6)) + ny
    index = np.arange(n, dtype=float)
    u = u0 + dx * np.arange(out_nx)
    v = v0 + dy * np.arange(out_ny)
    vv, uu = np.meshgrid(v, u, indexing="ij")
    out = np.full((len(target_along), out_ny, out_nx), fill, dtype=np.float64)
    tol = 1e-6 * max(1.0, geom.median_step)
    for m, s in enumerate(target_along):
        if s < geom.along[0] - tol or s > geom.along[-1] + tol:
            continue
        f = float(np.clip(np.interp(s, geom.along, index), 0.0, n - 1))
        k0 = min(int(np.floor(f)), n - 2) if n > 1 else 0
        w = f - k0
        off_u = float(np.interp(f, index, geom.offsets[:, 0]))
        off_v = float(np.interp(f, index, geom.offsets[:, 1]))
        a = (uu - off_u) / dx
        b = (vv - off_v) / dy
        inside = (a >= -1e-6) & (a <= nx - 1 + 1e-6) & (b >= -1e-6) & (b <= ny - 1 + 1e-6)
        coords = np.stack([np.clip(b, 0, ny - 1), np.clip(a, 0, nx - 1)])
        plane = ndimage.map_coordinates(volume[k0], coords, order=1, mode="nearest")
        if n > 1 and w > 0:
            upper = ndimage.map_coordinates(volume[k0 + 1], coords, order=1, mode="nearest")
            plane = (1.0 - w) * plane + w * upper
        out[m] = np.where(inside, plane, fill)
    origin = geom.positions[0] + u0 * geom.row + v0 * geom.col
    return out, origin, (out_nx, out_ny)
