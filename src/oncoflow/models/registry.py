"""A timm-style model registry: ``create_model(name, **cfg)`` builds any registered network.

Model modules (every module of :mod:`oncoflow.models`) register their constructors with
:func:`register_model`; :func:`create_model` and :func:`list_models` import them all first, so a
caller never imports a model module to have its models registered. ``create_model`` is the only
way a training job builds a network::

    @register_model
    def lesion_resnet18(in_channels: int = 1, n_classes: int = 2) -> nn.Module: ...

    model = create_model("lesion_resnet18", in_channels=3)
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

from oncoflow.errors import ModelError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(fn: F) -> F:
    """Register ``fn`` under its name (a second model of that name is an error)."""
    name = fn.__name__
    if name in _REGISTRY and _REGISTRY[name] is not fn:
        msg = f"a model named {name!r} is already registered"
        raise ModelError(msg)
    _REGISTRY[name] = fn
    return fn


@functools.cache
def _import_model_modules() -> None:
    """Import every module of :mod:`oncoflow.models` once (each registers its models)."""
    package = __name__.rsplit(".", 1)[0]  # oncoflow.models, found by path: no import cycle
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name != "registry":
            importlib.import_module(f"{package}.{info.name}")


def list_models() -> list[str]:
    """Names of the registered models, sorted (every model module imported first)."""
    _import_model_modules()
    return sorted(_REGISTRY)


def create_model(name: str, **cfg: Any) -> nn.Module:
    """Build the registered model ``name`` with keyword settings ``cfg``.

    Raises:
        ModelError: Unknown name, or settings the constructor does not take (both named).
    """
    if name not in _REGISTRY:
        _import_model_modules()
    if name not in _REGISTRY:
        known = ", ".join(list_models()) or "none registered"
        msg = f"unknown model {name!r} (known: {known})"
        raise ModelError(msg)
    try:
        return _REGISTRY[name](**cfg)
    except TypeError as exc:
        msg = f"model {name!r}: {exc}"
        raise ModelError(msg) from exc
