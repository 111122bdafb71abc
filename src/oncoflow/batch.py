"""Per-patient work in few processes: batches, their per-item records, and study indexes.

A per-patient stage (conversion, lesion crops, radiomics, PET metrics, pathomics) costs ~1 s of
interpreter start-up and imports per job for a fraction of a second of work. The workflow
therefore runs a *batch* of patients in one process (:func:`run_batch`) into a staging folder
that mirrors the final layout, and a cheap per-patient job (``scripts/publish.sh``, no Python)
then *publishes* each patient's files to their usual place (hard links, no copy) or fails with
that patient's own error message. So
per-patient outputs, reruns of a deleted output, and per-patient errors under ``--keep-going``
stay as they were; a broken file costs its patient, not the batch.

Scheduling: a publish job declares ``threads: 0`` (it links a few files), so hundreds of them
never hold the cores that batch jobs wait for; and the longest batches (radiomics, pathomics,
then the conversion batches that feed radiomics) carry a higher ``priority`` so that they start
first and the stage does not end with one long batch running alone.

Staging layout of one batch folder ``B`` (``results/.batches/<stage>/<study>/<n>``)::

    B/<key>...          what the item's command wrote (its --out paths point here)
    B/<key>.log         the item's log (provenance line, progress, warnings)
    B/<key>.error       only when the item failed: the one-line message(s) naming patient and file
    B/batch.json        per item: seconds of wall and CPU time, ok / failed

A *study index* (:func:`folder_index`) lists the per-patient folders of a study in one small file,
so a job that reads every patient (model training, the report) depends on one input instead of
hundreds: Snakemake's scheduler re-measures the inputs of every waiting job each time it selects
jobs, and hundreds of directories per waiting job kept one core busy during training.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oncoflow.errors import OncoflowError
from oncoflow.progress import Progress

log = logging.getLogger("oncoflow.batch")

SUMMARY = "batch.json"
"""Name of the per-batch record inside a staging folder."""


@dataclass(frozen=True)
class BatchItem:
    """One unit of a batch: a key (its path stem inside the staging folder) and its arguments.

    Attributes:
        key: Relative path stem of the item's outputs, e.g. ``NS001`` or ``NS001/0_CT_label1``;
            ``<key>.log`` and ``<key>.error`` are written beside them.
        argv: Command-line arguments of the stage's script (without the program name).
    """

    key: str
    argv: list[str]

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> BatchItem:
        """Build from ``{"key": ..., "argv": [...]}`` (the JSON the workflow passes)."""
        key, argv = data.get("key"), data.get("argv")
        if not isinstance(key, str) or not key or not isinstance(argv, list):
            msg = f"batch item {data!r}: expected {{'key': str, 'argv': [str, ...]}}"
            raise OncoflowError(msg)
        if Path(key).is_absolute() or ".." in Path(key).parts:
            msg = f"batch item key {key!r} must be a relative path inside the batch folder"
            raise OncoflowError(msg)
        return cls(key=key, argv=[str(a) for a in argv])


def plan_batches(patients: Sequence[str], size: int) -> list[list[str]]:
    """Cut sorted ``patients`` into ``n = ceil(len / size)`` chunks of equal size (+-1).

    Chunk ``i`` holds ``patients[i * N // n : (i + 1) * N // n]`` (``N`` patients). Every
    per-patient stage of a study uses the same chunks, so lesion batch ``i`` reads conversion
    batch ``i``'s staging folder.

    Raises:
        ValueError: ``size`` below 1.
    """
    if size < 1:
        msg = f"batch size must be >= 1, not {size}"
        raise ValueError(msg)
    ordered = sorted(patients)
    if not ordered:
        return []
    n = -(-len(ordered) // size)
    bounds = [i * len(ordered) // n for i in range(n + 1)]
    return [ordered[a:b] for a, b in itertools.pairwise(bounds)]


def items_argument(items: Iterator[tuple[str, Sequence[Any]]] | Sequence[Any]) -> str:
    """The ``--items`` JSON of ``scripts/run_batch.py``: ``[{"key": ..., "argv": [...]}, ...]``.

    Args:
        items: ``(key, argv)`` pairs; argument values are written as text.
    """
    return json.dumps([{"key": key, "argv": [str(a) for a in argv]} for key, argv in items])


@contextlib.contextmanager
def _captured(path: Path) -> Iterator[io.TextIOBase]:
    """Send stderr and oncoflow's log records to ``path`` while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        handler = logging.StreamHandler(handle)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        saved = root.handlers[:]
        root.handlers = [handler]
        root.setLevel(min(root.level or logging.INFO, logging.INFO))
        try:
            with contextlib.redirect_stderr(handle):
                yield handle
        finally:
            root.handlers = saved


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def run_batch(
    items: Sequence[BatchItem],
    main: Callable[[Sequence[str]], int],
    out: Path,
    *,
    label: str = "batch",
    progress_every_s: float = 10.0,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``main(item.argv)`` for every item in this process; one failure never stops the rest.

    An item fails when ``main`` returns non-zero (the scripts print ``error: <message>`` naming
    patient and file) or raises; its message goes to ``<key>.error`` and the batch goes on.

    Progress (items done, elapsed seconds, an estimate of the seconds left = elapsed / done x
    remaining) is logged at most every ``progress_every_s`` seconds and at the end.

    Args:
        items: The batch.
        main: The stage script's ``main(argv) -> exit code``.
        out: The staging folder (created).
        label: What the progress lines call the batch (stage, study, number).
        progress_every_s: Least interval between progress lines, in seconds.
        provenance: The batch job's provenance record, stored in ``batch.json``.

    Returns:
        The summary also written to ``out/batch.json``: per item ``ok``, ``wall_s``, ``cpu_s``.
    """
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    progress = Progress(len(items), f"{label}:", logger=log, every_s=progress_every_s)
    records: dict[str, dict[str, Any]] = {}
    for done, item in enumerate(items, start=1):
        error_file = out / f"{item.key}.error"
        error_file.unlink(missing_ok=True)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        with _captured(out / f"{item.key}.log") as handle:
            try:
                code = main(item.argv)
            except SystemExit as exc:  # argparse errors
                code = exc.code if isinstance(exc.code, int) else 1
            except Exception as exc:  # any failure is the item's, not the batch's
                print(f"error: {item.key}: {type(exc).__name__}: {exc}", file=handle)
                code = 1
        ok = code == 0
        if not ok:
            text = (out / f"{item.key}.log").read_text()
            lines = _error_lines(text) or [f"error: {item.key}: exit code {code} (see its log)"]
            error_file.write_text("\n".join(lines) + "\n")
            for line in lines:
                log.error("%s %s", item.key, line)
        records[item.key] = {
            "ok": ok,
            "wall_s": round(time.perf_counter() - wall0, 4),
            "cpu_s": round(time.process_time() - cpu0, 4),
        }
        progress.update(done)
    summary = {
        "label": label,
        "items": records,
        "n_failed": sum(not r["ok"] for r in records.values()),
        "wall_s": round(time.perf_counter() - start, 3),
    }
    if provenance is not None:
        summary["provenance"] = provenance
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def folder_index(folders: Sequence[Path]) -> dict[str, Any]:
    """List per-patient folders: their files and byte sizes (what a study index file holds).

    Args:
        folders: The study's per-patient output folders, e.g. ``results/<study>/lesions/<p>``.

    Returns:
        ``{"folders": {name: {relative file: size in bytes}}}``.

    Raises:
        OncoflowError: A folder does not exist (its path is named).
    """
    entries: dict[str, dict[str, int]] = {}
    for folder in map(Path, folders):
        if not folder.is_dir():
            msg = f"{folder}: per-patient folder does not exist"
            raise OncoflowError(msg)
        entries[folder.name] = {
            str(p.relative_to(folder)): p.stat().st_size
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
    return {"folders": entries}


def script_main(path: Path) -> Callable[[Sequence[str]], int]:
    """Import ``scripts/<name>.py`` by path and return its ``main(argv)``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"oncoflow_batch_{path.stem}", path)
    if spec is None or spec.loader is None or not path.exists():
        msg = f"{path}: script not found"
        raise OncoflowError(msg)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    main = getattr(module, "main", None)
    if main is None:
        msg = f"{path}: has no main(argv)"
        raise OncoflowError(msg)
    return main
