"""Optional deep tile embeddings: a torchvision ResNet whose weights come from a local file.

Nothing is downloaded: the architecture is built with ``weights=None`` and the state dict is
read from the given file (``torch.load(..., weights_only=True)``; a bare state dict, or a dict
holding one under ``"state_dict"`` / ``"model"``; keys may carry a ``"module."`` prefix and the
classifier ``fc.*`` keys are ignored). Tiles are resized to 224 px, normalised with the
ImageNet mean / sd and passed through the network without its classifier; the embedding of a
slide is the mean of its tile embeddings (features ``emb_<arch>_<i>``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from oncoflow.errors import FeatureError

log = logging.getLogger(__name__)

ARCHS: tuple[str, ...] = ("resnet18", "resnet34", "resnet50")
"""Supported torchvision architectures."""

INPUT_PX = 224
"""Side of the network input (px)."""

_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_SD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class TileEmbedder:
    """A frozen ResNet trunk on CPU (or the given device) mapping RGB tiles to vectors.

    Args:
        weights: Local state-dict file.
        arch: One of :data:`ARCHS`.
        device: torch device string.
        batch_size: Tiles per forward pass.

    Raises:
        FeatureError: Missing or unreadable weights, or weights of another architecture.
    """

    def __init__(
        self, weights: Path, *, arch: str = "resnet18", device: str = "cpu", batch_size: int = 16
    ) -> None:
        import torch
        import torchvision

        weights = Path(weights)
        if arch not in ARCHS:
            msg = f"unknown embedding architecture {arch!r}; expected one of {', '.join(ARCHS)}"
            raise FeatureError(msg)
        if not weights.is_file():
            msg = f"{weights}: embedding weights file does not exist"
            raise FeatureError(msg)
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as exc:
            msg = f"{weights}: cannot read embedding weights ({' '.join(str(exc).split())})"
            raise FeatureError(msg) from exc
        if isinstance(state, dict):
            for key in ("state_dict", "model"):
                if isinstance(state.get(key), dict):
                    state = state[key]
                    break
        if not isinstance(state, dict):
            msg = f"{weights}: embedding weights are not a state dict"
            raise FeatureError(msg)
        state = {
            str(k).removeprefix("module."): v
            for k, v in state.items()
            if not str(k).removeprefix("module.").startswith("fc.")
        }
        model = getattr(torchvision.models, arch)(weights=None)
        self.dim = int(model.fc.in_features)
        model.fc = torch.nn.Identity()
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            msg = f"{weights}: weights do not fit a torchvision {arch} ({first})"
            raise FeatureError(msg) from exc
        self.model = model.eval().to(device)
        self.arch = arch
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self._torch = torch

    def _prepare(self, rgb: np.ndarray) -> np.ndarray:
        img = Image.fromarray(np.ascontiguousarray(rgb))
        if img.size != (INPUT_PX, INPUT_PX):
            img = img.resize((INPUT_PX, INPUT_PX), Image.Resampling.BILINEAR)
        x = (np.asarray(img, dtype=np.float32) / 255.0 - _MEAN) / _SD
        return x.transpose(2, 0, 1)

    def embed(self, tiles: Iterable[np.ndarray]) -> np.ndarray:
        """Embed RGB tiles; returns (n, dim) float64."""
        out: list[np.ndarray] = []
        batch: list[np.ndarray] = []
        torch = self._torch

        def flush() -> None:
            x = torch.from_numpy(np.stack(batch)).to(self.device)
            with torch.inference_mode():
                out.append(self.model(x).cpu().numpy().astype(np.float64))
            batch.clear()

        for rgb in tiles:
            batch.append(self._prepare(rgb))
            if len(batch) == self.batch_size:
                flush()
        if batch:
            flush()
        return np.concatenate(out) if out else np.zeros((0, self.dim))

    def feature_names(self) -> list[str]:
        """Names of the embedding features, ``emb_<arch>_<i>`` (zero-padded)."""
        return [f"emb_{self.arch}_{i:04d}" for i in range(self.dim)]
