"""Where the time of a run went: per-stage figures from Snakemake's per-job benchmark files.

Every rule writes ``logs/benchmarks/<stage>/...tsv`` (Snakemake's ``benchmark:`` directive: wall
seconds ``s`` and CPU seconds ``cpu_time`` of the job, among others); the file is written when the
job ends, so a job ran from ``mtime - s`` to ``mtime``. Batched per-patient stages also record
each patient's own wall and CPU seconds in their staging folder (``batch.json``,
:mod:`oncoflow.batch`).

Figures per stage:

* ``jobs`` - number of benchmark files (jobs) of the stage;
* ``span_s`` - from the first job's start to the last job's end (stages overlap in time);
* ``job_wall_s`` / ``job_cpu_s`` - sums over the stage's jobs;
* ``items`` / ``item_cpu_s`` - batched stages: patients (or ROIs) and their mean CPU seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

BENCHMARKS = Path("logs/benchmarks")
"""Where a run's per-job benchmark files are, relative to its working directory (the rules'
``benchmark:`` directives; beside the logs, apart from the committed suite in ``benchmarks/``)."""

STAGE_ORDER = (
    "demo",
    "validate",
    "folds",
    "convert",
    "lesions",
    "features",
    "harmonize",
    "nnunet",
    "train",
    "ddpm",
    "evaluate",
    "report",
)
"""Stages in the order a run reaches them (the first folder under :data:`BENCHMARKS`)."""

PRE_TRAINING = ("demo", "validate", "folds", "convert", "lesions", "features", "harmonize")
"""Stages before any model trains: cohort, validation, conversion, lesions, features, ComBat."""

PER_PATIENT = ("convert", "lesions", "features", "harmonize")
"""The stages from conversion to ComBat (what batching speeds up; the demo cohort's writing and
validation come before them)."""


CPU_NOTE = (
    "Job CPU is Snakemake's sampled figure (every second at first, then every 30 s), so it misses"
    " the last interval of each job: a lower bound. CPU per item is measured inside the batch"
    " process (`batch.json`)."
)
"""The footnote of :func:`format_table`: how far to trust each CPU column."""


@dataclass(frozen=True)
class JobTime:
    """One job's benchmark record: its stage, start and end (epoch seconds), wall and CPU."""

    stage: str
    start: float
    end: float
    wall_s: float
    cpu_s: float


@dataclass(frozen=True)
class StageTime:
    """Figures of one stage (module docstring)."""

    stage: str
    jobs: int
    span_s: float
    job_wall_s: float
    job_cpu_s: float
    items: int = 0
    item_cpu_s: float = 0.0


def read_benchmarks(root: Path, *, since: float = 0.0) -> list[JobTime]:
    """Read every ``*.tsv`` under ``root`` written at or after ``since`` (epoch seconds).

    Args:
        root: The run's benchmark folder (its :data:`BENCHMARKS`).
        since: Ignore files older than this (jobs of an earlier run).

    Returns:
        One :class:`JobTime` per file whose header has ``s``; the stage is the first folder.
    """
    jobs = []
    for path in sorted(Path(root).rglob("*.tsv")):
        end = path.stat().st_mtime
        if end < since:
            continue
        lines = path.read_text().splitlines()
        if len(lines) < 2:
            continue
        header, values = lines[0].split("\t"), lines[-1].split("\t")
        record = dict(zip(header, values, strict=False))
        if "s" not in record:
            continue
        wall = float(record["s"])
        cpu = float(record.get("cpu_time") or 0.0)
        stage = path.relative_to(root).parts[0]
        jobs.append(JobTime(stage, end - wall, end, wall, cpu))
    return jobs


def batch_items(results: Path) -> dict[str, tuple[int, float]]:
    """Per batched stage: number of items and their total CPU seconds (``batch.json`` files)."""
    totals: dict[str, tuple[int, float]] = {}
    for path in sorted(Path(results).glob(".batches/*/*/*/batch.json")):
        stage = path.relative_to(results).parts[1]
        stage = "features" if stage in ("radiomics", "pet", "pathomics") else stage
        items = json.loads(path.read_text())["items"].values()
        n, cpu = totals.get(stage, (0, 0.0))
        totals[stage] = (n + len(items), cpu + sum(float(i["cpu_s"]) for i in items))
    return totals


def stage_times(jobs: Iterable[JobTime], items: dict[str, tuple[int, float]]) -> list[StageTime]:
    """Aggregate job records per stage, in :data:`STAGE_ORDER` (other stages after, sorted)."""
    by_stage: dict[str, list[JobTime]] = {}
    for job in jobs:
        by_stage.setdefault(job.stage, []).append(job)
    order = [s for s in STAGE_ORDER if s in by_stage]
    order += sorted(set(by_stage) - set(STAGE_ORDER))
    table = []
    for stage in order:
        group = by_stage[stage]
        n_items, item_cpu = items.get(stage, (0, 0.0))
        table.append(
            StageTime(
                stage=stage,
                jobs=len(group),
                span_s=round(max(j.end for j in group) - min(j.start for j in group), 1),
                job_wall_s=round(sum(j.wall_s for j in group), 1),
                job_cpu_s=round(sum(j.cpu_s for j in group), 1),
                items=n_items,
                item_cpu_s=round(item_cpu / n_items, 3) if n_items else 0.0,
            )
        )
    return table


def until_end_of(jobs: Iterable[JobTime], stages: Iterable[str], start: float) -> float:
    """Seconds from ``start`` to the end of the last job of ``stages`` (0 when none ran)."""
    wanted = set(stages)
    ends = [j.end for j in jobs if j.stage in wanted]
    return round(max(ends) - start, 1) if ends else 0.0


def stage_window(jobs: Iterable[JobTime], stage: str | Iterable[str]) -> tuple[float, float] | None:
    """(start, end) epoch seconds of stage(s): the first job's start to the last job's end."""
    wanted = {stage} if isinstance(stage, str) else set(stage)
    group = [j for j in jobs if j.stage in wanted]
    if not group:
        return None
    return min(j.start for j in group), max(j.end for j in group)


def cores_busy(stages: Iterable[dict], names: Iterable[str], wall: float, cores: int) -> float:
    """Share of a phase's core time that the jobs of its stages used.

    ``sum(job_wall_s of the stages in names) / (wall * cores)``: 1 when every core ran a job for
    the whole phase; idle cores, scheduling gaps and one long last job lower it.

    Args:
        stages: Rows of :func:`as_dicts` (``stage`` and ``job_wall_s`` are read).
        names: The stages of the phase, e.g. :data:`PER_PATIENT`.
        wall: Wall seconds of the phase.
        cores: Cores the run was given.
    """
    wanted = set(names)
    used = sum(float(row["job_wall_s"]) for row in stages if row["stage"] in wanted)
    return round(used / (wall * cores), 3)


def format_table(table: list[StageTime]) -> str:
    """A Markdown table of :func:`stage_times` (what ``make demo`` prints at the end)."""
    lines = [
        "| stage | jobs | span (s) | sum of job wall (s) | sum of job CPU (s) | items "
        "| CPU s per item |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table:
        item = f"{row.items} | {row.item_cpu_s:.2f}" if row.items else "- | -"
        lines.append(
            f"| {row.stage} | {row.jobs} | {row.span_s:.1f} | {row.job_wall_s:.1f} | "
            f"{row.job_cpu_s:.1f} | {item} |"
        )
    lines += ["", CPU_NOTE]
    return "\n".join(lines)


def as_dicts(table: list[StageTime]) -> list[dict]:
    """The table as JSON-ready dicts."""
    return [asdict(row) for row in table]
