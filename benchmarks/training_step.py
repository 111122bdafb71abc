"""Training steps/s of a deep model: the real data pipeline vs the same model on preloaded tensors.

Model: the liver_response relation network (three ResNet-18 branches, ``input_size`` px crops,
``k`` slices x 2 time points per sequence), AdamW, focal loss; one step = forward, backward and
optimiser step on a batch of patients.

* ``pipeline``: :class:`oncoflow.deep.train_liver.PatientCropDataset` (each patient's npz files
  read from disk, slices selected and resized) through a ``torch.utils.data.DataLoader`` with
  ``--workers`` worker processes (pinned memory and non-blocking copies on CUDA);
* ``preloaded``: the same batches already in memory as tensors (on the device).

``ratio = pipeline steps/s / preloaded steps/s`` (goal >= 0.85 on a GPU: the loader keeps the
device busy). Both are timed after ``--warmup`` steps, best of ``--repeats``. The crops are the
demo's ``results/liver_response/lesions`` when ``--lesions`` is given, else a generated cohort of
``--patients`` patients written in the lesions stage's format.

Writes ``benchmarks/training_step.json`` (or ``--out``).

Example:
    python benchmarks/training_step.py --device auto --workers 2 --steps 30
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from oncoflow.deep.train_liver import LiverSettings, PatientCropDataset
from oncoflow.models import liver  # noqa: F401 - registers the rungs
from oncoflow.models.registry import create_model
from oncoflow.train.engine import resolve_device
from oncoflow.train.losses import focal_loss

HERE = Path(__file__).resolve().parent
STEMS = ["MR_T1", "MR_T2", "MR_T1V"]


def write_cohort(root: Path, n: int, size: int, seed: int = 0) -> list[str]:
    """Lesion npz files of ``n`` generated patients (2 time points, 3 sequences, 6-10 slices)."""
    rng = np.random.default_rng(seed)
    patients = [f"B{i:04d}" for i in range(n)]
    for patient in patients:
        for tp in (0, 1):
            arrays = {}
            for stem in STEMS:
                m = int(rng.integers(6, 11))
                arrays[f"{stem}/lesion"] = rng.random((m, size, size), dtype=np.float32)
                arrays[f"{stem}/lesion_mask"] = (rng.random((m, size, size)) > 0.5).astype(np.uint8)
                arrays[f"{stem}/area_mm2"] = rng.uniform(50, 500, m)
                arrays[f"{stem}/spacing"] = np.array([1.0, 1.0, 5.0])
                arrays[f"{stem}/negative"] = np.zeros((0, size, size), np.float32)
            folder = root / patient
            folder.mkdir(parents=True, exist_ok=True)
            np.savez(folder / f"{tp}.npz", stems=np.array(STEMS), **arrays)
    return patients


def _steps(model, optimizer, batches, device, steps: int, warmup: int) -> float:
    """Steps/s over ``steps`` batches after ``warmup`` (device synchronised)."""
    tab = torch.zeros(1, 2, device=device)
    y = None
    done, start = 0, 0.0
    for i, (x, volumes) in enumerate(batches):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        x = x.to(device, non_blocking=True)
        t = volumes.to(device, non_blocking=True) if volumes is not None else tab.expand(len(x), 2)
        y = torch.arange(len(x), device=device) % 2
        loss = focal_loss(model(x, t), y, gamma=2.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= warmup:
            done += 1
        if done == steps:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


def measure(args: argparse.Namespace, lesions: Path, patients: list[str]) -> dict[str, float]:
    """Best steps/s of the streamed pipeline and of preloaded batches, and their ratio."""
    device = resolve_device(args.device)
    settings = LiverSettings(stems=STEMS, primary="MR_T2", slices=args.slices, input_size=args.size)
    if len(patients) < args.batch_size:
        msg = f"{len(patients)} patients: need at least one full batch of {args.batch_size}"
        raise SystemExit(msg)
    dataset = PatientCropDataset(lesions, patients, settings)
    torch.manual_seed(0)
    model = create_model("relation_net", tabular_dim=2, n_sequences=3, backbone="resnet18").to(
        device
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    n_batches = args.warmup + args.steps
    loader_kwargs = {
        "batch_size": args.batch_size,
        "shuffle": True,
        "num_workers": args.workers,
        "pin_memory": device.type == "cuda",
        "drop_last": True,
        "persistent_workers": args.workers > 0,
    }

    def streamed():
        loader = torch.utils.data.DataLoader(dataset, **loader_kwargs)
        while True:
            yield from loader

    cache = [dataset[i % len(dataset)] for i in range(args.batch_size * 4)]
    preloaded = [
        (
            torch.stack([c[0] for c in cache[j : j + args.batch_size]]).to(device),
            torch.stack([c[1] for c in cache[j : j + args.batch_size]]).to(device),
        )
        for j in range(0, len(cache), args.batch_size)
    ]

    def in_memory():
        for i in range(n_batches):
            yield preloaded[i % len(preloaded)]

    pipe, pre = [], []
    for _ in range(args.repeats):
        pipe.append(_steps(model, optimizer, streamed(), device, args.steps, args.warmup))
        pre.append(_steps(model, optimizer, in_memory(), device, args.steps, args.warmup))
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.machine(),
        "pipeline_steps_per_s": max(pipe),
        "preloaded_steps_per_s": max(pre),
        "ratio": max(pipe) / max(pre),
        "all_pipeline": pipe,
        "all_preloaded": pre,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write its JSON (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=64, help="crop side fed to the network (px)")
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--patients", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--lesions", type=Path, default=None, help="a study's lesions folder")
    parser.add_argument("--out", type=Path, default=HERE / "training_step.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        if args.lesions is not None:
            lesions = args.lesions
            patients = sorted(p.name for p in lesions.iterdir() if p.is_dir())
        else:
            lesions = Path(tmp)
            patients = write_cohort(lesions, args.patients, 64)
        result = measure(args, lesions, patients)
    result.update(
        {
            "model": "relation_net (3 x ResNet-18)",
            "batch_size": args.batch_size,
            "input_size": args.size,
            "slices": args.slices,
            "workers": args.workers,
            "steps": args.steps,
            "torch_threads": torch.get_num_threads(),
            "cohort": str(args.lesions) if args.lesions else f"generated, {args.patients} patients",
            "goal": ">= 0.85 on GPU",
        }
    )
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        json.dumps(
            {
                k: result[k]
                for k in ("device", "pipeline_steps_per_s", "preloaded_steps_per_s", "ratio")
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
