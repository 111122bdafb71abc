"""The entries of ``oracle.json`` (the metrics themselves come from :mod:`oncoflow.metrics`)."""

from __future__ import annotations


def oracle_entry(metric: str, value: float) -> dict[str, float | str]:
    """Return ``{"metric": ..., "value": ...}`` with the value rounded to 4 decimals."""
    return {"metric": metric, "value": round(float(value), 4)}
