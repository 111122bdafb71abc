"""Run the real nnU-Net v2 commands with paths and trainer location set per job.

nnU-Net reads its folders from environment variables. Every rule sets them from config for its
own subprocess only (:func:`nnunet_env`), so several studies (and a user's own nnU-Net setup) never
share or clobber a folder. ``nnUNet_extTrainer`` points at :mod:`oncoflow.segmentation.nnunet_ext`,
where ``nnUNetv2_train -tr oncoflowMultitaskTrainer`` finds our trainer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from oncoflow.errors import SegmentationError

log = logging.getLogger(__name__)

EXT_TRAINERS = Path(__file__).resolve().parent / "nnunet_ext"
"""Folder given to nnU-Net as ``nnUNet_extTrainer``."""

NON_PLANS_FILES = frozenset({"dataset.json", "dataset_fingerprint.json", "splits_final.json"})
STAMP = "oncoflow_settings.json"


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``Dataset<NNN>_<Name>`` (nnU-Net pads the id to three digits)."""
    if not 1 <= int(dataset_id) <= 999:
        msg = f"nnU-Net dataset id {dataset_id} is outside 1..999"
        raise SegmentationError(msg)
    return f"Dataset{int(dataset_id):03d}_{name}"


def nnunet_env(
    raw: Path | None = None,
    preprocessed: Path | None = None,
    results: Path | None = None,
    *,
    processes: int | None = None,
) -> dict[str, str]:
    """The calling environment + nnU-Net's folders, our trainer folder and ``src`` on the path."""
    env = dict(os.environ)
    for key, value in (
        ("nnUNet_raw", raw),
        ("nnUNet_preprocessed", preprocessed),
        ("nnUNet_results", results),
    ):
        if value is not None:
            env[key] = str(Path(value).resolve())
    env["nnUNet_extTrainer"] = str(EXT_TRAINERS)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    if processes is not None:
        env["nnUNet_n_proc_DA"] = str(max(0, int(processes)))
        env.setdefault("OMP_NUM_THREADS", str(max(1, int(processes))))
    env.setdefault("nnUNet_compile", "false")
    return env


def run_command(command: Sequence[str], env: Mapping[str, str], what: str) -> None:
    """Run an nnU-Net command, streaming its output to our stderr (the rule's log).

    Raises:
        SegmentationError: The command is not installed or exits non-zero.
    """
    executable = shutil.which(command[0], path=env.get("PATH"))
    if executable is None:
        msg = f"{command[0]} not found on PATH: install nnunetv2 (pip install nnunetv2)"
        raise SegmentationError(msg)
    log.info("%s: %s", what, " ".join(command))
    result = subprocess.run(list(command), env=dict(env), stdout=sys.stderr, stderr=sys.stderr)
    if result.returncode != 0:
        msg = f"{what}: {' '.join(command)} exited with status {result.returncode} (see the log)"
        raise SegmentationError(msg)


def planned_plans_file(dataset_dir: Path, exclude: Sequence[str] = ()) -> Path:
    """The plans JSON a planner wrote in a preprocessed dataset folder.

    Raises:
        SegmentationError: None or several candidates.
    """
    candidates = sorted(
        p
        for p in Path(dataset_dir).glob("*.json")
        if p.name not in NON_PLANS_FILES and p.stem not in set(exclude)
    )
    if len(candidates) != 1:
        names = ", ".join(p.name for p in candidates) or "none"
        msg = f"{dataset_dir}: expected one plans file from the planner, found {names}"
        raise SegmentationError(msg)
    return candidates[0]


def settings_digest(*parts: Any) -> str:
    """SHA-256 of JSON-serialised settings (plans, dataset.json, split) of a training run."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def prepare_fold_folder(fold_dir: Path, digest: str) -> bool:
    """Decide between resuming and starting a fold's training; return True to pass ``--c``.

    A fold folder trained under other settings (plans, data, split) is emptied first; with the
    same settings, training continues from ``checkpoint_latest.pth`` when nnU-Net wrote one (a
    killed job), and starts fresh otherwise.
    """
    fold_dir = Path(fold_dir)
    stamp = fold_dir / STAMP
    if fold_dir.exists():
        previous = json.loads(stamp.read_text()).get("digest") if stamp.exists() else None
        if previous != digest:
            log.info("%s: settings changed since the last run; starting over", fold_dir)
            shutil.rmtree(fold_dir)
    fold_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"digest": digest}) + "\n")
    resume = (fold_dir / "checkpoint_latest.pth").exists()
    if resume:
        log.info("%s: resuming from checkpoint_latest.pth", fold_dir)
    return resume
