"""profiles/slurm on a real one-node SLURM cluster (Debian packages, brought up by the test).

Runs part of the demo DAG (demo -> validate -> qc for one small study) and two probe jobs (a GPU
job, a job that fails once) through ``--profile profiles/slurm`` and asserts that every job went
through sbatch (SLURM job ids in the log, jobs known to ``scontrol``), that the GPU job was given
a GPU by SLURM, and that the failed job was resubmitted with twice the runtime.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import snakemake_env
from slurm_cluster import slurm_cluster

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("slurm_probe.smk")
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/")
"""Snakemake's line for every sbatch submission: SLURM job id and rule."""

pytestmark = pytest.mark.slow


def _snakemake(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--directory", str(workdir)]
        + ["--profile", str(REPO / "profiles" / "slurm")]
        + ["--slurm-no-account", "--slurm-status-command", "squeue"]
        + ["--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "5"]
        + list(args),
        capture_output=True,
        text=True,
        check=False,
        env={**snakemake_env(), **env, "PATH": snakemake_env()["PATH"]},
        timeout=900,
    )


def _job(env: dict[str, str], job_id: str) -> dict[str, str]:
    """``scontrol show job`` as key -> value."""
    command = ["scontrol", "show", "job", "-o", job_id]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return dict(field.split("=", 1) for field in out.stdout.split() if "=" in field)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with slurm_cluster(tmp_path_factory.mktemp("slurm")) as env:
        yield env


@pytest.fixture(scope="module")
def demo_run(cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm_demo")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for name, study in config["studies"].items():
        study["enabled"] = name == "liver_response"
    config["demo"]["patients"] = 8
    config["demo"]["study_patients"] = {}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    proc = _snakemake(workdir, cluster, "-s", str(REPO / "Snakefile"), "qc")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return workdir, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def probe_run(cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm_probe")
    proc = _snakemake(workdir, cluster, "-s", str(PROBE))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return workdir, proc.stdout + proc.stderr


def test_demo_jobs_went_through_sbatch(cluster, demo_run):
    workdir, log = demo_run
    submitted = SUBMITTED.findall(log)
    # the target rule `qc` runs locally; everything else was an sbatch job
    rules = sorted(rule for _, rule in submitted)
    assert rules == ["demo_cohort", "qc_summary", "validate_cohort"], log[-3000:]
    for job_id, _ in submitted:
        job = _job(cluster, job_id)
        assert job["JobState"] == "COMPLETED", job
        assert job["Partition"] == "debug"
    assert (workdir / "results/qc/cohort_report.json").exists()


def test_gpu_job_was_given_a_gpu(cluster, probe_run):
    workdir, _ = probe_run
    record = dict(part.split("=", 1) for part in (workdir / "probe/gpu.txt").read_text().split())
    job = _job(cluster, record["job"])
    # the plugin turned `resources: gpu=1` into --gpus=1; SLURM bound GPU 0 to the job
    assert "gpu:1" in job.get("TresPerJob", "") + job.get("TresPerNode", ""), job
    assert record["cuda"] == "0"


def test_failed_job_is_retried_with_more_runtime(cluster, probe_run):
    workdir, log = probe_run
    flaky_jobs = [job_id for job_id, rule in SUBMITTED.findall(log) if rule == "flaky"]
    assert (workdir / "probe/first_attempt_failed").exists()
    assert (workdir / "probe/flaky.txt").exists()
    assert len(flaky_jobs) == 2, log[-3000:]
    first, second = (_job(cluster, j) for j in flaky_jobs)
    assert first["JobState"] == "FAILED"
    assert second["JobState"] == "COMPLETED"
    assert first["TimeLimit"] == "01:00:00"
    assert second["TimeLimit"] == "02:00:00"
