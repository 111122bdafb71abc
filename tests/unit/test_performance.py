"""oncoflow.performance: stage figures from Snakemake benchmark files and batch records."""

from __future__ import annotations

import json
import os

import pytest

from oncoflow.performance import (
    batch_items,
    cores_busy,
    format_table,
    read_benchmarks,
    stage_times,
    stage_window,
    until_end_of,
)

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(root, rel, wall, cpu, end):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{wall}\t0:00:01\t1\t1\t1\t1\t0\t0\t50\t{cpu}\n")
    os.utime(path, (end, end))


def test_stage_figures_from_benchmark_files(tmp_path):
    root = tmp_path / "benchmarks"
    _bench(root, "convert/batches/a/0.tsv", 10.0, 8.0, 1000.0)
    _bench(root, "convert/batches/a/1.tsv", 4.0, 3.0, 1002.0)
    _bench(root, "train/a/m/fold_0.tsv", 50.0, 90.0, 1100.0)
    _bench(root, "demo/a.tsv", 5.0, 4.0, 990.0)
    _bench(root, "demo/old.tsv", 5.0, 4.0, 10.0)  # an earlier run
    jobs = read_benchmarks(root, since=900.0)
    assert len(jobs) == 4
    staging = tmp_path / "results/.batches/convert/a/0"
    staging.mkdir(parents=True)
    items = {
        "P1": {"ok": True, "wall_s": 1, "cpu_s": 0.5},
        "P2": {"ok": True, "wall_s": 1, "cpu_s": 1.5},
    }
    (staging / "batch.json").write_text(json.dumps({"items": items}))
    table = stage_times(jobs, batch_items(tmp_path / "results"))
    assert [row.stage for row in table] == ["demo", "convert", "train"]
    convert = table[1]
    assert convert.jobs == 2
    assert convert.span_s == pytest.approx(1002.0 - 990.0)  # first start 1000 - 10 to last end
    assert convert.job_wall_s == 14.0
    assert convert.job_cpu_s == 11.0
    assert (convert.items, convert.item_cpu_s) == (2, 1.0)
    assert stage_window(jobs, "train") == (1050.0, 1100.0)
    assert until_end_of(jobs, ["demo", "convert"], start=980.0) == 22.0
    text = format_table(table)
    assert "| convert | 2 | 12.0 | 14.0 | 11.0 | 2 | 1.00 |" in text


def test_cores_busy_is_job_wall_over_phase_core_time() -> None:
    rows = [
        {"stage": "convert", "job_wall_s": 150.0},
        {"stage": "features", "job_wall_s": 240.0},
        {"stage": "train", "job_wall_s": 999.0},  # not in the phase
    ]
    # (150 + 240) / (300 s x 2 cores)
    assert cores_busy(rows, ["convert", "features"], 300.0, 2) == 0.65
