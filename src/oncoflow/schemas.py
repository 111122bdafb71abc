"""Locate and load the JSON Schemas (YAML) of ``schemas/``.

The schemas live at the repository root (``schemas/``) so that the Snakefile and the library share
one copy; a wheel install carries them as ``oncoflow/_schemas``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

TABLES: tuple[str, ...] = ("images", "clinical", "outcomes", "splits")
"""Names of the cohort tables; ``<name>.csv`` is validated against ``<name>.schema.yaml``."""


def schema_dir() -> Path:
    """Return the folder holding ``*.schema.yaml`` (packaged copy first, then the repository)."""
    packaged = Path(__file__).resolve().parent / "_schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "schemas"


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """Load ``schemas/<name>.schema.yaml`` as a dict.

    Args:
        name: ``"config"`` or one of :data:`TABLES`.

    Returns:
        The parsed JSON Schema.
    """
    path = schema_dir() / f"{name}.schema.yaml"
    with path.open() as fh:
        return yaml.safe_load(fh)


def columns(table: str) -> list[str]:
    """Return the column names a cohort table may have, in schema order."""
    return list(load_schema(table)["properties"])


def required_columns(table: str) -> list[str]:
    """Return the columns a cohort table must have."""
    return list(load_schema(table).get("required", []))
