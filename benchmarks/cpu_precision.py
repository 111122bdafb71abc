"""CPU precision of the multitask nnU-Net: a training epoch and a prediction pass, fp32 vs bf16.

On a kept pancreas_multitask results tree (``--tree``, e.g. ``pancreas_multitask.py --keep``:
nnU-Net's preprocessed dataset, its raw test images and a trained fold 0), for each variant of
``nnunet.trainer`` (``cpu_precision`` x ``channels_last``, :mod:`oncoflow.segmentation.precision`):

* **train**: ``--epochs`` epochs of the study's trainer at science scale (config/demo-full.yaml:
  its plans, iterations per epoch and validation iterations; a one-epoch warm-up, so the head
  trains too) into a scratch results folder, on one torch thread; the median of nnU-Net's logged
  epoch times past the first;
* **predict**: the tree's trained fold-0 network segments ``--cases`` test images; the median
  seconds per segmentation pass, and the lesion and whole-pancreas Dice of each variant's
  segmentation against the float32 one of the same weights (what bfloat16 changes in a mask).

``speedup`` = float32 / variant. Nothing is trained for the report: the figures are time and
agreement, not model quality (a full chain in each precision answers that:
``pancreas_multitask.py``). Writes ``benchmarks/cpu_precision.json`` (or ``--out``).

Adoption rule, fixed on 2026-12-07 before any bfloat16 chain had finished: config.yaml keeps
``cpu_precision: auto`` and ``channels_last: true`` when, over the four seeds of the README's
pancreas_multitask table (20261123, 43, 5, 7), the chains trained with them
(``pancreas_multitask.py --seed S``) against the float32 chains of commit f0e901b (the same
configuration otherwise) lose on average no more than 0.03 of validation lesion Dice and no more
than 0.05 of validation subtype macro AUC (the spread between two float32 trainings of one
configuration was 0.02-0.15 and 0.1-0.2). Validation rows only; ``--adoption`` applies it to the
committed JSONs and adds the result to the JSON.

Usage:
    python benchmarks/cpu_precision.py --tree /tmp/pm5 [--epochs 4] [--cases 6]
    python benchmarks/cpu_precision.py --adoption   # the rule, from the committed JSONs
    python benchmarks/cpu_precision.py --render-only  # the README block from the JSON
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"
sys.path.insert(0, str(HERE))

from readme_block import replace_block  # noqa: E402
from run import _merged_config  # noqa: E402

from oncoflow.metrics.segmentation import dice  # noqa: E402
from oncoflow.segmentation.precision import native_bf16  # noqa: E402
from oncoflow.segmentation.predict import read_case, study_predictor  # noqa: E402
from oncoflow.segmentation.workflow import NnunetSettings, train_fold  # noqa: E402
from oncoflow.workflow.options import nnunet_settings  # noqa: E402

STUDY = "pancreas_multitask"
VARIANTS = {
    "fp32": {"cpu_precision": "fp32", "channels_last": False},
    "fp32_channels_last": {"cpu_precision": "fp32", "channels_last": True},
    "bf16_channels_last": {"cpu_precision": "bf16", "channels_last": True},
}
"""Variant name -> trainer settings; the first is the reference."""
EPOCH_TIME = re.compile(r"Epoch time: ([0-9.]+) s")
FP32_COMMIT = "f0e901b"
"""The commit of the README seeds' float32 chains (the adoption rule's reference)."""
ADOPTION_SEEDS = (20261123, 43, 5, 7)
MAX_LOSS = {"lesion_dice": 0.03, "subtype_auc_macro": 0.05}
"""The adoption rule's largest mean loss per validation figure (module docstring)."""


def variant_settings(variant: dict[str, Any], epochs: int) -> NnunetSettings:
    """The study's science-scale nnU-Net settings with ``variant`` and ``epochs`` in the trainer."""
    block = nnunet_settings(STUDY, _merged_config("full")["studies"][STUDY])
    trainer = {**block["trainer"], **variant, "epochs": epochs, "warmup_epochs": 1}
    trainer.update(selection_ramp_epochs=1, plot_every=max(epochs, 1), final_validation=False)
    return NnunetSettings.from_json(json.dumps({**block, "trainer": trainer}))


def epoch_seconds(fold_dir: Path) -> list[float]:
    """Epoch times (s) of nnU-Net's training log(s) in a fold folder."""
    times: list[float] = []
    for log in sorted(fold_dir.glob("training_log_*.txt")):
        times += [float(t) for t in EPOCH_TIME.findall(log.read_text())]
    return times


def time_training(tree: Path, settings: NnunetSettings, scratch: Path) -> dict[str, Any]:
    """Train fold 0 of the tree's dataset for the settings' epochs; epoch times."""
    preprocessed = tree / "results" / STUDY / "nnunet" / "nnUNet_preprocessed"
    final = train_fold(settings, 0, preprocessed=preprocessed, results=scratch, device="cpu")
    times = epoch_seconds(final.parent)
    return {"epoch_s": [round(t, 2) for t in times], "median_epoch_s": statistics.median(times[1:])}


def time_prediction(
    tree: Path, settings: NnunetSettings, cases: list[Path]
) -> tuple[list[float], list[np.ndarray]]:
    """Seconds per segmentation pass and the segmentations of the tree's fold-0 network."""
    results = tree / "results" / STUDY / "nnunet" / "nnUNet_results"
    predictor = study_predictor(settings, results, (0,), "cpu")
    seconds, masks = [], []
    for path in cases:
        data, properties = read_case(path.name, [path])
        start = time.perf_counter()
        masks.append(np.asarray(predictor.predict_single_npy_array(data, properties)))
        seconds.append(time.perf_counter() - start)
    return seconds, masks


def agreement(reference: list[np.ndarray], masks: list[np.ndarray]) -> dict[str, float]:
    """Mean lesion (label 2) and whole-pancreas (labels 1-2) Dice against the reference masks."""
    lesion = [dice(r == 2, m == 2) for r, m in zip(reference, masks, strict=True)]
    pancreas = [dice(r > 0, m > 0) for r, m in zip(reference, masks, strict=True)]
    return {"lesion_dice": round(float(np.mean(lesion)), 4),
            "whole_pancreas_dice": round(float(np.mean(pancreas)), 4)}  # fmt: skip


def measure(tree: Path, epochs: int, n_cases: int) -> dict[str, Any]:
    """Every variant's training and prediction figures (module docstring)."""
    raw = next((tree / "results" / STUDY / "nnunet" / "nnUNet_raw").glob("Dataset*"))
    cases = sorted((raw / "imagesTs").glob("*_0000.nii.gz"))[:n_cases]
    out: dict[str, Any] = {}
    reference: list[np.ndarray] = []
    for name, variant in VARIANTS.items():
        settings = variant_settings(variant, epochs)
        with tempfile.TemporaryDirectory(prefix="cpu_precision_") as scratch:
            train = time_training(tree, settings, Path(scratch))
        seconds, masks = time_prediction(tree, settings, cases)
        reference = reference or masks
        out[name] = {
            "settings": variant,
            "train": train,
            "predict": {
                "pass_s": [round(s, 3) for s in seconds],
                "median_pass_s": round(statistics.median(seconds), 3),
            },
            "agreement_with_fp32": agreement(reference, masks),
        }
        print(name, json.dumps(out[name]), flush=True)
    first = out[next(iter(VARIANTS))]
    for entry in out.values():
        entry["speedup"] = {
            "train": round(first["train"]["median_epoch_s"] / entry["train"]["median_epoch_s"], 2),
            "predict": round(
                first["predict"]["median_pass_s"] / entry["predict"]["median_pass_s"], 2
            ),
        }
    return out


def validation_figures(result: dict[str, Any]) -> dict[str, float]:
    """Validation lesion Dice and subtype macro AUC of a ``pancreas_multitask_<seed>.json``."""
    return {
        "lesion_dice": result["dice"]["lesion"]["validation"]["value"],
        "subtype_auc_macro": result["subtype"]["nnunet"]["validation"]["auc_macro"]["value"],
    }


def adoption() -> dict[str, Any]:
    """The adoption rule on the committed JSONs: float32 at :data:`FP32_COMMIT`, bfloat16 now."""
    seeds: dict[str, Any] = {}
    for seed in ADOPTION_SEEDS:
        name = f"benchmarks/pancreas_multitask_{seed}.json"
        old = subprocess.run(
            ["git", "show", f"{FP32_COMMIT}:{name}"], cwd=REPO, capture_output=True, text=True,
            check=True,
        ).stdout  # fmt: skip
        new = json.loads((REPO / name).read_text())
        seeds[str(seed)] = {
            "fp32": validation_figures(json.loads(old)),
            "bf16": validation_figures(new),
            "chain_s": {"fp32": json.loads(old)["wall_s"], "bf16": new["wall_s"]},
        }
    change = {
        key: round(float(np.mean([s["bf16"][key] - s["fp32"][key] for s in seeds.values()])), 4)
        for key in MAX_LOSS
    }
    keep = all(change[key] >= -loss for key, loss in MAX_LOSS.items())
    return {"reference_commit": FP32_COMMIT, "seeds": seeds, "mean_change": change,
            "max_loss": MAX_LOSS, "keep_bf16": keep}  # fmt: skip


def table(result: dict[str, Any]) -> str:
    """The README block: speed per variant, then the adoption rule's figures."""
    lines = [
        f"`{result['command']}` on one thread of an {result['machine']['processor']} CPU "
        f"(native bfloat16: {'yes' if result['machine']['native_bf16'] else 'no'}; "
        f"{result['date']}; `benchmarks/cpu_precision.json`):",
        "",
        "| variant | training epoch (s) | speed-up | prediction pass (s) | speed-up "
        "| lesion / pancreas Dice vs float32 masks |",
        "|---|---|---|---|---|---|",
    ]
    for name, v in result["variants"].items():
        agree = v["agreement_with_fp32"]
        lines.append(
            f"| {name} | {v['train']['median_epoch_s']:.2f} | {v['speedup']['train']:.2f} "
            f"| {v['predict']['median_pass_s']:.2f} | {v['speedup']['predict']:.2f} "
            f"| {agree['lesion_dice']:.4f} / {agree['whole_pancreas_dice']:.4f} |"
        )
    rule = result.get("adoption")
    if rule:
        lines += [
            "",
            "Chains of the README's seeds, float32 (commit "
            f"{rule['reference_commit']}) against bfloat16 (`python benchmarks/cpu_precision.py "
            "--adoption`; validation rows only):",
            "",
            "| seed | validation lesion Dice, fp32 / bf16 | validation subtype macro AUC, fp32 / "
            "bf16 | chain wall time (s), fp32 / bf16 |",
            "|---|---|---|---|",
        ]
        for seed, s in rule["seeds"].items():
            lines.append(
                f"| {seed} | {s['fp32']['lesion_dice']:.3f} / {s['bf16']['lesion_dice']:.3f} "
                f"| {s['fp32']['subtype_auc_macro']:.3f} / {s['bf16']['subtype_auc_macro']:.3f} "
                f"| {s['chain_s']['fp32']:.0f} / {s['chain_s']['bf16']:.0f} |"
            )
        change = rule["mean_change"]
        lines += [
            "",
            f"Mean change: lesion Dice {change['lesion_dice']:+.3f}, subtype macro AUC "
            f"{change['subtype_auc_macro']:+.3f}; the rule (script docstring) "
            f"{'keeps' if rule['keep_bf16'] else 'does not keep'} bfloat16 on.",
        ]
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the machine type."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def main(argv: list[str] | None = None) -> int:
    """Measure the variants on a kept tree and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=None, help="kept pancreas_multitask run")
    parser.add_argument("--adoption", action="store_true", help="apply the adoption rule")
    parser.add_argument("--render-only", action="store_true", help="README block from the JSON")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs per variant")
    parser.add_argument("--cases", type=int, default=6, help="test images segmented")
    parser.add_argument("--out", type=Path, default=HERE / "cpu_precision.json")
    args = parser.parse_args(argv)
    if args.render_only or args.adoption:
        result = json.loads(args.out.read_text())
        if args.adoption:
            result["adoption"] = adoption()
            args.out.write_text(json.dumps(result, indent=1) + "\n")
            print(json.dumps(result["adoption"], indent=1))
        replace_block(REPO / "README.md", "cpu_precision", table(result))
        return 0
    if args.tree is None:
        parser.error("--tree is needed to measure")
    torch.set_num_threads(1)
    variants = measure(args.tree, args.epochs, args.cases)
    result = {
        "command": f"python benchmarks/cpu_precision.py --tree DIR --epochs {args.epochs} "
        f"--cases {args.cases}",
        "date": date.today().isoformat(),
        "machine": {
            "processor": cpu_model(),
            "native_bf16": native_bf16(),
            "torch": torch.__version__,
            "torch_threads": 1,
        },
        "variants": variants,
    }
    if args.out.is_file():  # keep the adoption figures of an earlier run
        result = {**json.loads(args.out.read_text()), **result}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    replace_block(REPO / "README.md", "cpu_precision", table(result))
    print(table(result))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
