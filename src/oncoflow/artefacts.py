"""Fitted artefacts (ComBat estimates, trained models) saved by training and read by ``apply``.

An artefact is a pickle of ``{"format", "kind", "oncoflow", "object"}``: ``kind`` names what the
object is (``"combat"``, ``"net_survival"``), so a file given in the wrong place is refused with
a clear message instead of failing later. Files are written to a temporary name and renamed, so
an interrupted job never leaves half a model behind.

Pickles run code when loaded: load artefacts your own runs wrote, never files from strangers.

Example:
    >>> save_artefact(tmp / "combat.pkl", frozen, kind="combat")  # doctest: +SKIP
    >>> frozen = load_artefact(tmp / "combat.pkl", kind="combat")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

from oncoflow import __version__
from oncoflow.errors import OncoflowError

FORMAT = 1
"""Layout version of the artefact envelope."""

MOVED: dict[tuple[str, str], str] = {
    ("oncoflow.studies.net_survival", "ClinicalEncoder"): "oncoflow.survival.design",
    ("oncoflow.studies.net_survival", "FittedCox"): "oncoflow.survival.design",
    ("oncoflow.survival.protocol", "ClinicalEncoder"): "oncoflow.survival.design",
    ("oncoflow.survival.protocol", "FittedCox"): "oncoflow.survival.design",
    ("oncoflow.harmonize.combat", "_CovariateEncoder"): "oncoflow.harmonize.inputs",
}
"""Pickled classes that moved: ``(old module, class name) -> new module``.

The one place that keeps artefacts written by older versions loadable: a class is pickled under
the module it is defined in, and when it moves its old name is added here.
"""


class _Unpickler(pickle.Unpickler):
    """Finds a class that moved modules (:data:`MOVED`) in its new module."""

    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED.get((module, name), module), name)


def save_artefact(path: Path | str, obj: Any, *, kind: str) -> None:
    """Pickle ``obj`` with its ``kind`` and the oncoflow version, atomically.

    Args:
        path: File to write (parent folders are created).
        obj: The fitted object.
        kind: What the object is; :func:`load_artefact` checks it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    envelope = {"format": FORMAT, "kind": kind, "oncoflow": __version__, "object": obj}
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("wb") as handle:
        pickle.dump(envelope, handle, protocol=5)
    os.replace(partial, path)


def load_artefact(path: Path | str, *, kind: str) -> Any:
    """Read an artefact written by :func:`save_artefact` and check its kind.

    Raises:
        OncoflowError: Missing or unreadable file, or an artefact of another kind / format.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            envelope = _Unpickler(handle).load()
    except FileNotFoundError as exc:
        msg = f"{path}: fitted artefact does not exist (run the training part of the workflow)"
        raise OncoflowError(msg) from exc
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        msg = f"{path}: cannot read the fitted artefact ({exc})"
        raise OncoflowError(msg) from exc
    if not isinstance(envelope, dict) or envelope.get("format") != FORMAT:
        msg = f"{path}: not an oncoflow artefact of format {FORMAT}"
        raise OncoflowError(msg)
    if envelope.get("kind") != kind:
        msg = f"{path}: holds a {envelope.get('kind')!r} artefact, expected {kind!r}"
        raise OncoflowError(msg)
    return envelope["object"]


def sha256(path: Path | str) -> str:
    """Hex SHA-256 of a file (provenance of the artefacts a prediction used)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
