"""Environments, containers and rules agree with pyproject's pins."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GROUPS = ["imaging", "radiomics", "pathology", "torch", "nnunet", "survival", "report"]


def _pyproject_pins() -> dict[str, str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {}
    for dep in deps:
        name, sep, version = dep.partition("==")
        assert sep, f"pyproject dependency {dep!r} is not pinned with =="
        pins[name.lower()] = version
    return pins


def _env_pins(group: str) -> dict[str, str]:
    env = yaml.safe_load((REPO / "envs" / f"{group}.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return {name.lower(): version for name, _, version in (p.partition("==") for p in pip)}


@pytest.mark.parametrize("group", GROUPS)
def test_env_pins_equal_pyproject(group):
    pins = _pyproject_pins()
    env = _env_pins(group)
    assert env, group
    assert {name: pins.get(name) for name in env} == env


@pytest.mark.parametrize("group", GROUPS)
def test_container_builds_its_env(group):
    from spython.main.parse.parsers import SingularityParser

    (recipe,) = SingularityParser(str(REPO / "containers" / f"{group}.def")).recipe.values()
    assert recipe.fromHeader.startswith("condaforge/miniforge3:")
    assert not recipe.fromHeader.endswith(":latest")
    assert f"envs/{group}.yaml /opt/oncoflow/envs/{group}.yaml" in recipe.files
    assert any(f"/opt/oncoflow/envs/{group}.yaml" in line for line in recipe.install)


def test_installed_versions_match_pins():
    """What CI installed is what pyproject pins (catches a silently upgraded dependency)."""
    from importlib.metadata import version

    for name, pinned in _pyproject_pins().items():
        assert version(name).split("+")[0] == pinned, name


def test_every_rule_has_env_container_log_benchmark():
    text = "\n".join(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))
    rules = re.split(r"^(?:rule|checkpoint) ", text, flags=re.M)[1:]
    assert rules
    for body in rules:
        name = body.split(":", 1)[0]
        directives = ["conda:", "container:", "log:"]
        # local bookkeeping rules (publishing a batch item by hard links, a study index) take
        # milliseconds; a benchmark thread per job would cost more than the job. Their batch
        # jobs, where the work is, have benchmarks.
        if "    localrule: True" not in body:
            directives.append("benchmark:")
        for directive in directives:
            assert f"    {directive}" in body, f"rule {name} lacks {directive}"


def test_per_job_benchmark_files_go_under_logs():
    # benchmarks/ is the committed performance suite; Snakemake's per-job files sit with the logs
    text = "\n".join(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))
    # a literal path, or a results tree's own (oncoflow.dag.Run.benchmark: logs/benchmarks/...)
    literal = re.findall(r'^( *)benchmark:\n\1    f?"([^"]+)"', text, flags=re.M)
    per_run = re.findall(r'^( *)benchmark:\n\1    \w+\.benchmark\("([^"]+)"\)', text, flags=re.M)
    assert literal
    assert per_run
    assert len(literal) + len(per_run) == len(re.findall(r"^ *benchmark:$", text, flags=re.M))
    for _, path in literal:
        assert path.startswith("logs/benchmarks/"), path
    from oncoflow.dag import Run

    for _, path in per_run:
        assert Run().benchmark(path).startswith("logs/benchmarks/"), path
        assert Run("x").benchmark(path).startswith("logs/benchmarks/apply/x/"), path


def test_snakemake_lint_is_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--cores", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr
