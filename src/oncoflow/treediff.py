"""Compare two result trees file by file: did a refactor change any output?

Used by ``scripts/compare_results.py`` to check that a redesign leaves the demo's outputs as they
were. Each file present in both trees is compared by kind:

* ``.csv`` / ``.tsv`` - same columns and rows; numbers equal within ``rtol`` / ``atol``
  (``|a - b| <= atol + rtol * |b|``), text equal; timing columns (:data:`VOLATILE_COLUMNS`) skipped;
* ``.json`` - same keys and values, numbers within the same tolerance; keys that record when,
  where and how long a job ran (:data:`VOLATILE_KEYS`) are skipped;
* ``.nii.gz`` / ``.npz`` / ``.npy`` - the arrays, within the tolerance;
* anything else (models, figures, HTML, logs) - byte-equal or reported as ``binary``, since a
  model is judged by its predictions and a figure by its table.

The result lists each file under ``same``, ``close`` (within tolerance, not byte-equal),
``different`` (with the first difference), ``binary`` and ``only_a`` / ``only_b``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

VOLATILE_KEYS: frozenset[str] = frozenset(
    {
        "created",
        "date",
        "duration_s",
        "elapsed_s",
        "finished",
        "host",
        "hostname",
        "python",
        "started",
        "time",
        "timestamp",
        "versions",
        "wall_s",
        "cpu_s",
        "seconds",
    }
)
"""JSON keys whose values depend on the run, not on the code (skipped)."""

VOLATILE_COLUMNS: frozenset[str] = frozenset({"seconds", "wall_s", "cpu_s", "elapsed_s"})
"""Table columns that time a step (skipped)."""

SKIPPED_DIRS: frozenset[str] = frozenset({".snakemake", "resume", "__pycache__"})
"""Folders not compared: Snakemake's metadata and the resume files of training jobs."""


def _files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not SKIPPED_DIRS & set(p.relative_to(root).parts)
    }


def _close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        if math.isnan(a) and math.isnan(b):
            return True
        return abs(a - b) <= atol + rtol * abs(b)
    return a == b


def _json_diff(a: Any, b: Any, rtol: float, atol: float, where: str = "") -> Iterator[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key in VOLATILE_KEYS:
                continue
            if key not in a or key not in b:
                yield f"{where}/{key}: only in {'b' if key not in a else 'a'}"
            else:
                yield from _json_diff(a[key], b[key], rtol, atol, f"{where}/{key}")
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield f"{where}: {len(a)} vs {len(b)} items"
        else:
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                yield from _json_diff(x, y, rtol, atol, f"{where}[{i}]")
    elif not _close(a, b, rtol, atol):
        yield f"{where}: {a!r} vs {b!r}"


def _table_diff(a: pd.DataFrame, b: pd.DataFrame, rtol: float, atol: float) -> str | None:
    a, b = a.drop(columns=VOLATILE_COLUMNS & set(a)), b.drop(columns=VOLATILE_COLUMNS & set(b))
    if list(a.columns) != list(b.columns):
        return f"columns {list(a.columns)} vs {list(b.columns)}"
    if len(a) != len(b):
        return f"{len(a)} vs {len(b)} rows"
    for column in a.columns:
        x, y = a[column], b[column]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            xv, yv = x.to_numpy(float), y.to_numpy(float)
            bad = ~(np.isclose(xv, yv, rtol=rtol, atol=atol) | (np.isnan(xv) & np.isnan(yv)))
        else:
            bad = (x.astype(str) != y.astype(str)).to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            return f"column {column}, row {row}: {x.iloc[row]!r} vs {y.iloc[row]!r}"
    return None


def _arrays(path: Path) -> dict[str, np.ndarray]:
    if path.name.endswith((".nii.gz", ".nii")):
        import SimpleITK as sitk

        image = sitk.ReadImage(str(path))
        return {
            "array": sitk.GetArrayFromImage(image),
            "geometry": np.array([*image.GetSpacing(), *image.GetOrigin(), *image.GetDirection()]),
        }
    if path.suffix == ".npy":
        return {"array": np.load(path)}
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def compare_file(a: Path, b: Path, rtol: float = 1e-6, atol: float = 1e-9) -> tuple[str, str]:
    """``(verdict, detail)`` of one file present in both trees (module docstring)."""
    if a.read_bytes() == b.read_bytes():
        return "same", ""
    name = a.name
    try:
        if name.endswith((".csv", ".tsv")):
            sep = "\t" if name.endswith(".tsv") else ","
            problem = _table_diff(pd.read_csv(a, sep=sep), pd.read_csv(b, sep=sep), rtol, atol)
        elif name.endswith(".json"):
            left, right = json.loads(a.read_text()), json.loads(b.read_text())
            diffs = list(_json_diff(left, right, rtol, atol))
            problem = f"{diffs[0]} ({len(diffs)} difference(s))" if diffs else None
        elif name.endswith((".nii.gz", ".nii", ".npz", ".npy")):
            xa, xb = _arrays(a), _arrays(b)
            problem = None
            for key in sorted(set(xa) | set(xb)):
                if key not in xa or key not in xb or xa[key].shape != xb[key].shape:
                    problem = f"array {key}: shapes differ or missing"
                elif not np.allclose(xa[key], xb[key], rtol=rtol, atol=atol, equal_nan=True):
                    gap = np.nanmax(np.abs(xa[key].astype(float) - xb[key].astype(float)))
                    problem = f"array {key}: largest difference {gap:.3g}"
                if problem:
                    break
        else:
            return "binary", "bytes differ"
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        return "different", f"unreadable: {exc}"
    return ("different", problem) if problem else ("close", "")


def compare_trees(
    a: Path, b: Path, *, rtol: float = 1e-6, atol: float = 1e-9
) -> dict[str, list[Any]]:
    """Compare every file of two result trees (module docstring).

    Args:
        a: First tree (e.g. ``results/`` of the run before a change).
        b: Second tree.
        rtol: Relative tolerance of numbers.
        atol: Absolute tolerance of numbers.

    Returns:
        ``{"same": [paths], "close": [paths], "different": [[path, detail]], "binary": [paths],
        "only_a": [paths], "only_b": [paths]}``.
    """
    files_a, files_b = _files(Path(a)), _files(Path(b))
    report: dict[str, list[Any]] = {
        k: [] for k in ("same", "close", "different", "binary", "only_a", "only_b")
    }
    report["only_a"] = sorted(files_a - files_b)
    report["only_b"] = sorted(files_b - files_a)
    for path in sorted(files_a & files_b):
        verdict, detail = compare_file(Path(a) / path, Path(b) / path, rtol, atol)
        report[verdict].append([path, detail] if verdict == "different" else path)
    return report
