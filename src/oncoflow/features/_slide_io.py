"""Slide access for pathomics: open a slide with openslide and read regions as RGB arrays.

Regions are read straight into a numpy buffer through openslide's C binding where it can be used
(skipping the ARGB -> RGBA conversion and the PIL image of ``OpenSlide.read_region``), with the
public method as the fallback; transparent (unscanned) pixels become white either way.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path
from typing import Any

import numpy as np
import openslide
from PIL import Image

from oncoflow.errors import FeatureError


def open_slide(path: Path) -> openslide.OpenSlide:
    """Open a slide with openslide, turning every failure into a one-line :class:`FeatureError`.

    Args:
        path: Slide file.

    Returns:
        The open slide (close it, or use it as a context manager).

    Raises:
        FeatureError: The file is missing, not a slide openslide knows, or corrupt.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"{path}: slide file does not exist"
        raise FeatureError(msg)
    try:
        return openslide.OpenSlide(str(path))
    except openslide.OpenSlideUnsupportedFormatError as exc:
        msg = (
            f"{path}: cannot open slide: not a format openslide reads, or the file is corrupt "
            f"or truncated ({_one_line(exc)})"
        )
        raise FeatureError(msg) from exc
    except (openslide.OpenSlideError, OSError, ValueError) as exc:
        msg = f"{path}: cannot open slide, file is corrupt or unreadable ({_one_line(exc)})"
        raise FeatureError(msg) from exc


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _lowlevel_reader() -> Any:
    """Openslide's ctypes ``openslide_read_region`` (``None`` where it cannot be used).

    Reading straight into a numpy buffer skips the ARGB -> RGBA conversion and PIL image that
    ``OpenSlide.read_region`` builds; the public method is the fallback.
    """
    if sys.byteorder != "little":
        return None
    try:
        from openslide import lowlevel

        return getattr(lowlevel, "_read_region", None)
    except ImportError:  # pragma: no cover - openslide without the C binding
        return None


_READ_REGION = _lowlevel_reader()


def _argb_to_rgb(argb: np.ndarray) -> np.ndarray:
    """Premultiplied ARGB (uint32, little endian) -> RGB uint8 composited on white.

    The result is a zero-copy (h, w, 3) view of the buffer's R, G, B bytes (memory order B, G,
    R, A, so the view has a negative channel stride). Premultiplied colour over white is
    ``c + (255 - alpha)``; it is applied, in place, only when some pixel is not opaque
    (``min(argb) < 0xFF000000`` exactly when some alpha is below 255).
    """
    h, w = argb.shape
    bgra = argb.view(np.uint8).reshape(h, w, 4)
    if h and w and argb.min() < np.uint32(0xFF000000):
        clear = 255 - bgra[..., 3:4]  # colour <= alpha, so the sum stays <= 255
        bgra[..., :3] += clear
    return bgra[..., 2::-1]


def _to_pil(rgb: np.ndarray) -> Image.Image:
    """PIL image of an RGB array.

    Copies channel by channel: much faster than ``np.ascontiguousarray`` of a negative-stride view.
    """
    out = np.empty(rgb.shape, dtype=np.uint8)
    out[..., 0] = rgb[..., 0]
    out[..., 1] = rgb[..., 1]
    out[..., 2] = rgb[..., 2]
    return Image.fromarray(out)


def read_rgb(
    slide: openslide.AbstractSlide,
    path: Path,
    location: tuple[int, int],
    level: int,
    size: tuple[int, int],
) -> np.ndarray:
    """Read a region as RGB uint8; transparent (unscanned, outside-slide) pixels become white.

    Args:
        slide: Open slide.
        path: Its file (for messages).
        location: Level-0 (x, y) of the top-left corner.
        level: Pyramid level.
        size: (width, height) at ``level``.

    Returns:
        (height, width, 3) uint8 array (possibly a strided view; ``np.ascontiguousarray`` it
        where contiguous memory is needed).

    Raises:
        FeatureError: openslide fails to decode the region (corrupt tile data).
    """
    x, y = int(location[0]), int(location[1])
    w, h = int(size[0]), int(size[1])
    try:
        osr = getattr(slide, "_osr", None) if isinstance(slide, openslide.OpenSlide) else None
        if _READ_REGION is not None and osr is not None:
            argb = np.empty((h, w), dtype=np.uint32)
            ptr = argb.ctypes.data_as(ctypes.POINTER(ctypes.c_uint32))
            _READ_REGION(osr, ptr, x, y, level, w, h)
            return _argb_to_rgb(argb)
        region = slide.read_region((x, y), level, (w, h))
    except openslide.OpenSlideError as exc:
        msg = (
            f"{path}: cannot read region at level {level}, x={x}, y={y} "
            f"(corrupt slide? {_one_line(exc)})"
        )
        raise FeatureError(msg) from exc
    white = Image.new("RGBA", region.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, region).convert("RGB"))
