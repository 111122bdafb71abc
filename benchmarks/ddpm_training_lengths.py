"""Fidelity of the lung_synthesis diffusion model after two training lengths (and DDIM vs DDPM).

Needs a workflow run with lung_synthesis enabled (``--workdir``: converted images and
``results/lung_synthesis/splits.csv``). With the run's ``ddpm.model`` settings it trains one model
per ``--steps`` value on the training patients, samples every held-out patient with its own masks
(anatomy-preserving; ancestral over all T steps and DDIM with 25 steps) and scores the samples
inside the lung (MAE, PSNR, SSIM, HU-histogram W1, nodule radiomics SMD). Writes
``benchmarks/ddpm_training_lengths.json``.

Usage:
    python benchmarks/ddpm_training_lengths.py --workdir RUN [--steps 400 2000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from oncoflow.synthesis.data import write_nifti  # noqa: E402
from oncoflow.synthesis.model import DDPMSettings, train_ddpm  # noqa: E402
from oncoflow.synthesis.workflow import (  # noqa: E402
    evaluate_samples,
    read_case,
    split_patients,
    synthesize,
    training_inputs,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Train, sample and score per training length; write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a workflow run folder")
    parser.add_argument("--steps", type=int, nargs="+", default=[400, 2000])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/ddpm_training_lengths.json")
    args = parser.parse_args(argv)
    run = args.workdir
    config = yaml.safe_load((run / "config.yaml").read_text())
    model_settings = config["studies"]["lung_synthesis"]["ddpm"]["model"]
    converted = run / "results/converted"
    splits = run / "results/lung_synthesis/splits.csv"
    train = split_patients(splits, ["train"])
    test = split_patients(splits, ["internal_test", "external_test"])
    scratch = run / "benchmarks_ddpm"
    results = {}
    for steps in args.steps:
        settings = DDPMSettings.from_mapping(
            {**model_settings, "train_steps": steps, "seed": args.seed}
        )
        images, conditions = training_inputs(converted, train, settings)
        began = time.perf_counter()
        model, rows = train_ddpm(images, conditions, settings, progress=False, device="cpu")
        train_seconds = time.perf_counter() - began
        for ddim in (None, 25):
            began = time.perf_counter()
            samples = {}
            for patient in test:
                case = read_case(converted, patient, settings)
                volume = synthesize(
                    model, settings, case, ddim_steps=ddim, seed=args.seed, device="cpu"
                )
                samples[patient] = write_nifti(
                    volume, case, scratch / f"{steps}_{ddim}/{patient}.nii.gz"
                )
            per_patient = (time.perf_counter() - began) / len(test)
            summary, _ = evaluate_samples(samples, converted, settings)
            results[f"{steps} steps, {'DDIM 25' if ddim else 'ancestral'}"] = {
                **{k: round(v["mean"], 3) for k, v in summary["metrics"].items()},
                "radiomics_smd": round(summary["radiomics_smd"], 3),
                "loss_last_5_logs": round(sum(r["loss"] for r in rows[-5:]) / 5, 4),
                "train_seconds": round(train_seconds),
                "sample_seconds_per_patient": round(per_patient, 1),
            }
            print(json.dumps(results), flush=True)
    payload = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "train_patients": len(train),
        "test_patients": len(test),
        "settings": model_settings,
        "results": results,
    }
    args.out.write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
