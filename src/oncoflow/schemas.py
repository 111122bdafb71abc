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
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~6x faster when present
    with path.open() as fh:
        return yaml.load(fh, Loader=loader)  # a safe loader either way


def validate_config(config: dict[str, Any]) -> None:
    """Validate a workflow config against ``schemas/config.schema.yaml``, filling its defaults.

    The same check as ``snakemake.utils.validate(config, schema)`` (JSON Schema 2020-12, each
    ``default`` of a property set where the key is absent, in place), without re-reading the
    schema through a pure-Python YAML parser at every Snakemake start (~0.3 s of a no-op run).

    Raises:
        ValueError: The first violation, naming the config key (``studies.x.folds.k``) and the rule.
    """
    from jsonschema import Draft202012Validator, validators

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(key, subschema["default"])
        yield from Draft202012Validator.VALIDATORS["properties"](
            validator, properties, instance, schema
        )

    filling = validators.extend(Draft202012Validator, {"properties": set_defaults})
    error = next(iter(filling(load_schema("config")).iter_errors(config)), None)
    if error is not None:
        where = ".".join(map(str, error.absolute_path)) or "(top level)"
        raise ValueError(f"config: {where}: {error.message}")


def columns(table: str) -> list[str]:
    """Return the column names a cohort table may have, in schema order."""
    return list(load_schema(table)["properties"])


def required_columns(table: str) -> list[str]:
    """Return the columns a cohort table must have."""
    return list(load_schema(table).get("required", []))
