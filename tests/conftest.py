"""Shared test helpers."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def load_script(name: str, folder: str = "scripts") -> ModuleType:
    """Import ``<folder>/<name>.py`` (``scripts`` or ``benchmarks``: not packages) as a module."""
    path = REPO / folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"oncoflow_{folder}_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def snakemake_env() -> dict[str, str]:
    """Environment for snakemake subprocesses: their jobs run `python`, i.e. this interpreter."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile in ``workdir`` on 2 cores (output captured, no check)."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
        + ["--directory", str(workdir), "--cores", "2", *args],
        capture_output=True,
        text=True,
        check=False,
        env=snakemake_env(),
    )
