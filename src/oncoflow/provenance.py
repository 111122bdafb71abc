"""What an output was made with: a hash of the settings of the job and the software versions.

Every ``scripts/<rule>.py`` runs through :func:`oncoflow.cli.run`, which builds a
:class:`Provenance` from the script's parsed arguments, writes it as the first line of the job's
log and hands it to the script; JSON outputs carry it under ``"provenance"`` and tidy feature
tables carry ``settings_hash`` plus the extractor's version per row.

The hash covers the *settings* of the job - the options the Snakefile derived from
``config.yaml`` for that job - and not its file paths, so it is the same on every machine and in
every working folder, and it changes exactly when Snakemake's ``params`` change trigger would
rerun the job. Files named by an option are hashed by content where they are settings files
(e.g. a radiomics parameter YAML: :func:`file_hash`).

Example:
    >>> settings_hash({"b": 1, "a": [0.5, "x"]}) == settings_hash({"a": [0.5, "x"], "b": 1})
    True
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import oncoflow

PACKAGES: tuple[str, ...] = (
    "numpy",
    "scipy",
    "pandas",
    "SimpleITK",
    "pydicom",
    "nibabel",
    "pyradiomics-bhklab",
    "openslide-python",
    "openslide-bin",
    "scikit-image",
    "scikit-learn",
    "scikit-survival",
    "lifelines",
    "torch",
    "nnunetv2",
)
"""Distributions whose versions every record lists (those installed in the job's environment)."""

_NOT_SETTINGS = frozenset(
    {"help", "verbose", "provenance", "patient", "timepoint", "fold", "threads"}
)

HASH_CHARS = 16
"""Hex characters kept of a SHA-256 digest (64 bits: collisions are not a practical concern)."""


def settings_hash(settings: Any) -> str:
    """Return ``sha256(canonical JSON of settings)[:16]``.

    Canonical JSON: keys sorted, no whitespace, non-JSON values (paths, numpy scalars) as
    ``str``; so equal settings give equal hashes whatever the key order.
    """
    blob = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:HASH_CHARS]


def file_hash(path: Path) -> str:
    """Return ``sha256(file bytes)[:16]`` of a settings file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:HASH_CHARS]


def software_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Return ``{"oncoflow": version, <package>: version, ...}`` for the installed packages.

    Read once per process and package list (a metadata lookup costs ~3 ms a package, paid by
    every item of a batch otherwise); a fresh dict each call.
    """
    return dict(_installed_versions(tuple(packages)))


@functools.lru_cache(maxsize=8)
def _installed_versions(packages: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    versions = [("oncoflow", oncoflow.__version__)]
    for name in packages:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(versions)


@dataclass(frozen=True)
class Provenance:
    """The settings hash and software versions of one job.

    Attributes:
        config_hash: :func:`settings_hash` of the job's settings (see :func:`from_arguments`).
        settings: The settings that were hashed (option name -> value).
        versions: :func:`software_versions` of the job's environment.
    """

    config_hash: str
    settings: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"config_hash", "settings", "versions"}``."""
        return {
            "config_hash": self.config_hash,
            "settings": dict(self.settings),
            "versions": dict(self.versions),
        }

    @classmethod
    def from_arguments(
        cls, parser: argparse.ArgumentParser, args: argparse.Namespace
    ) -> Provenance:
        """Build the record of a script run from its parser and parsed arguments.

        Settings are the options whose argparse ``type`` is not :class:`~pathlib.Path`, minus
        ``verbose``, ``threads`` and the job's identity (``patient``, ``timepoint``, ``fold``);
        an option typed ``Path`` enters as ``True`` when given (using harmonized tables or not
        is a setting; where they lie is not), or by content hash when its ``dest`` ends in
        ``params`` or ``settings`` (a settings file).
        """
        settings: dict[str, Any] = {}
        for action in parser._actions:
            dest = action.dest
            if dest in _NOT_SETTINGS or not hasattr(args, dest):
                continue
            value = getattr(args, dest)
            if action.type is Path:
                if value is None:
                    continue
                if dest.endswith(("params", "settings")):
                    settings[dest] = f"sha256:{file_hash(value)}"
                else:
                    settings[dest] = True  # given (e.g. --harmonized): a choice, not a place
                continue
            settings[dest] = value
        return cls(settings_hash(settings), settings, software_versions())
