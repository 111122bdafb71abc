"""Ordered, configurable rules that classify a DICOM series and name the labels of its masks.

A rule file (YAML; the default is ``params/import/dicom_rules.yaml``) has four keys:

- ``skip``: ``[{reason, match}]``; the first rule that matches a series drops it with its reason
  (localizers, derived / secondary images, dose reports, secondary captures, ...);
- ``series``: ``[{modality, series, match}]``; the first rule that matches names the series'
  slot: the cohort's ``modality`` (CT, PET, MR) and ``series`` (a phase, an MR sequence or
  ``-``); a series no rule matches is skipped as ``unclassified``;
- ``masks``: ``{labels: [regex, ...]}``: label ``i`` is the ROI (RTSTRUCT) or segment (SEG)
  whose name the ``i``-th expression matches (searched, so ``(?i)`` makes it case-blind);
- ``min_slices``: image series with fewer instances (or frames) are skipped as too short.

A ``match`` maps header keywords to conditions, all of which must hold: a string is a regular
expression searched in the value (``ImageType`` is matched as its values joined by a backslash), and
``{min: a, max: b}`` bounds a number (either may be left out); ``{absent: true}`` holds when the
header has no value. A missing value fails every condition except ``absent``.

Example:
    >>> rules = load_rules()  # doctest: +SKIP
    >>> rules.classify({"Modality": "PT"})  # doctest: +SKIP
    ('PET', '-')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from oncoflow.errors import ConfigError

__all__ = ["DEFAULT_RULES", "Rules", "load_rules"]

DEFAULT_RULES = Path(__file__).resolve().parents[3] / "params" / "import" / "dicom_rules.yaml"
"""The default rule file of the repository."""


def _holds(condition: Any, value: str | float | None) -> bool:
    """Whether one condition holds for a header value (module docstring)."""
    if isinstance(condition, Mapping):
        if condition.get("absent"):
            return value is None or value == ""
        if value is None or value == "":
            return False
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        low, high = condition.get("min"), condition.get("max")
        return (low is None or number >= float(low)) and (high is None or number <= float(high))
    if value is None or value == "":
        return False
    return re.search(str(condition), str(value)) is not None


def _matches(match: Mapping[str, Any], values: Mapping[str, str | float]) -> bool:
    return all(_holds(cond, values.get(key)) for key, cond in match.items())


@dataclass(frozen=True)
class Rules:
    """A loaded rule file (module docstring).

    Attributes:
        skip: ``(reason, match)`` pairs, in order.
        series: ``(modality, series, match)`` triples, in order.
        labels: Regular expressions naming mask labels 1, 2, ...
        min_slices: Fewest instances an image series may have.
        source: The file the rules came from.
    """

    skip: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    series: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    min_slices: int = 5
    source: str = ""

    def skip_reason(self, values: Mapping[str, str | float]) -> str | None:
        """The reason of the first ``skip`` rule that matches, ``None`` when none does."""
        return next((reason for reason, match in self.skip if _matches(match, values)), None)

    def classify(self, values: Mapping[str, str | float]) -> tuple[str, str] | None:
        """``(modality, series)`` of the first ``series`` rule that matches, else ``None``."""
        for modality, series, match in self.series:
            if _matches(match, values):
                return modality, series
        return None

    def mask_roi(self, names: Sequence[str]) -> tuple[str | None, str | None]:
        """``(mask_roi, problem)``: the structure names of labels 1, 2, ... joined by ``+``.

        Each label's expression must match exactly one of ``names``; otherwise ``mask_roi`` is
        ``None`` and ``problem`` says which label found none or several.
        """
        chosen = []
        for label, pattern in enumerate(self.labels, start=1):
            found = [n for n in names if re.search(pattern, n)]
            if len(found) != 1:
                what = "no structure" if not found else f"several structures ({', '.join(found)})"
                return None, f"label {label} ({pattern}): {what} among {', '.join(names)}"
            chosen.append(found[0])
        return "+".join(chosen), None


def _check_match(where: str, match: Any) -> dict[str, Any]:
    if not isinstance(match, Mapping) or not match:
        raise ConfigError(f"{where}: 'match' must be a non-empty mapping of header conditions")
    for key, cond in match.items():
        if isinstance(cond, Mapping):
            unknown = set(cond) - {"min", "max", "absent"}
            if unknown:
                raise ConfigError(f"{where}: condition on {key} has unknown keys {sorted(unknown)}")
        else:
            try:
                re.compile(str(cond))
            except re.error as exc:
                raise ConfigError(f"{where}: {key}: bad regular expression ({exc})") from exc
    return dict(match)


def load_rules(path: Path | str | None = None) -> Rules:
    """Read a rule file (the default one without ``path``).

    Raises:
        ConfigError: A missing file, or a rule without its keys or with a bad expression (the
            message names the rule).
    """
    path = Path(path) if path is not None else DEFAULT_RULES
    if not path.is_file():
        raise ConfigError(f"{path}: DICOM import rule file does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    skip = []
    for i, rule in enumerate(data.get("skip", [])):
        where = f"{path}: skip rule {i + 1}"
        if "reason" not in rule:
            raise ConfigError(f"{where}: needs a 'reason'")
        skip.append((str(rule["reason"]), _check_match(where, rule.get("match"))))
    series = []
    for i, rule in enumerate(data.get("series", [])):
        where = f"{path}: series rule {i + 1}"
        if "modality" not in rule or "series" not in rule:
            raise ConfigError(f"{where}: needs 'modality' and 'series'")
        match = _check_match(where, rule.get("match"))
        series.append((str(rule["modality"]), str(rule["series"]), match))
    labels = [str(p) for p in (data.get("masks") or {}).get("labels", [])]
    for pattern in labels:
        _check_match(f"{path}: masks.labels", {"name": pattern})
    return Rules(skip, series, labels, int(data.get("min_slices", 5)), str(path))
