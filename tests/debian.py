"""Install Debian packages a test needs (CI machines are fresh; the tests run as root there)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest


def have(binaries: Sequence[str]) -> bool:
    """Every binary is on PATH or in /usr/sbin."""
    return all(shutil.which(b) or Path(f"/usr/sbin/{b}").exists() for b in binaries)


def ensure_packages(packages: Sequence[str], binaries: Sequence[str], what: str) -> None:
    """apt-get install ``packages`` unless ``binaries`` exist; skip (with the reason) where a
    machine has no apt-get or we are not root."""
    if have(binaries):
        return
    if shutil.which("apt-get") is None:
        pytest.skip(f"{what} needs Debian's {' '.join(packages)} and apt-get is not available")
    if os.geteuid() != 0:
        pytest.skip(f"{what}: {' '.join(packages)} missing and not root, cannot apt-get install")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *packages], check=True, env=env, capture_output=True
    )
