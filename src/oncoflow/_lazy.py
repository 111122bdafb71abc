"""Lazy exports of a package (PEP 562): names loaded from their submodule on first use.

A package whose ``__init__`` re-exports the names of heavy submodules (``oncoflow.metrics``,
``oncoflow.evaluate``) keeps a map name -> submodule and lets :func:`lazy_exports` build its
module-level ``__getattr__`` and ``__dir__``, so that importing the package, or one light
submodule of it, imports none of the others.

Example, at the end of a package's ``__init__``:

    .. code-block:: python

        _EXPORTS = {"auc": "classification", "dice": "segmentation"}
        __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package that loads ``exports`` on first use.

    Args:
        package: Dotted name of the package (its ``__name__``).
        exports: Exported name -> name of the submodule of ``package`` that defines it.

    Returns:
        ``(__getattr__, __dir__)`` to assign at the package's module level. ``__getattr__``
        imports ``<package>.<submodule>``, stores the value in the package's namespace (later
        look-ups do not call it again) and returns it; a name not in ``exports`` raises
        :class:`AttributeError`. ``__dir__`` lists the package's namespace and every export.
    """

    def load(name: str) -> Any:
        if name not in exports:
            msg = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(msg)
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def names() -> list[str]:
        return sorted([*vars(sys.modules[package]), *exports])

    return load, names
