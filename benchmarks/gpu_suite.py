"""The GPU suite: one run measuring the networks that need a GPU, written to one JSON.

(a) **nnU-Net multitask** (pancreas_multitask): the workflow trains fold 0 for a fixed short
    schedule (GPU: the ResEncM plans as planned, 5 epochs x 250 + 50 iterations, mirroring on) on
    a demo cohort, predicts the test cases and evaluates them; from the nnU-Net log: the time per
    epoch (mean after the first, which compiles and warms up), iterations/s, peak memory (the
    trainer's ``peak memory`` line), and the projected time of the production schedule,
    ``folds x epochs x (250 + 50) x seconds per iteration`` (5 x 1000 x 300); from
    ``metrics.json``: whole-pancreas and lesion Dice and the subtype macro AUC / macro-F1 on the
    test splits.
(b) **liver loader**: ``benchmarks/training_step.py`` at 128 and 224 px (streamed crops through a
    ``DataLoader`` vs the same batches preloaded on the device; goal ratio >= 0.85).
(c) **DDPM sampling**: the production Lung-DDPM network (base 64, channel_mult 1-1-2-3-4,
    attention at level 3, 250 steps) at 64^3: seconds per sample with DDIM over 25 steps and the
    ancestral sampler's projection (seconds per step x 250); untrained weights (the time does not
    depend on them).

Without CUDA (or with ``--tiny``) every part runs a tiny configuration on the CPU (8 patients,
CPU plans, 2 x 4 iterations, 32 / 48 px, DDPM 16^3): it checks that the suite works and measures
nothing worth quoting; its JSON says so (``"tiny": true``) and goes to ``gpu_suite_cpu.json``.

Usage:
    bash benchmarks/gpu_suite.sh                      # GPU: writes benchmarks/gpu_suite.json
    python benchmarks/gpu_suite.py --tiny --work DIR  # CPU check (what CI runs)
    python benchmarks/gpu_suite.py --render-only      # README table from the JSON
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from readme_block import replace_block

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
README = REPO / "README.md"
MARK = "gpu_suite"
PRODUCTION = {"folds": 5, "epochs": 1000, "iterations": 250, "val_iterations": 50}
NNUNET_GPU = {
    "plans": {"name": "oncoflowResEncMPlans"},
    "trainer": {"epochs": 5, "iterations_per_epoch": 250, "val_iterations_per_epoch": 50,
                "warmup_epochs": 1, "selection_ramp_epochs": 1, "mirroring": True,
                "save_every": 5, "final_validation": False, "plot_every": 5},
}  # fmt: skip
NNUNET_TINY = {
    "trainer": {"epochs": 2, "iterations_per_epoch": 4, "val_iterations_per_epoch": 1,
                "warmup_epochs": 1, "selection_ramp_epochs": 1, "save_every": 1},
}  # fmt: skip
DDPM_GPU = {"size": 64, "steps": 250, "base_channels": 64, "channel_mult": (1, 1, 2, 3, 4),
            "attention_levels": (3,), "ddim_steps": 25}  # fmt: skip
DDPM_TINY = {"size": 16, "steps": 20, "base_channels": 8, "channel_mult": (1, 2),
             "attention_levels": (1,), "ddim_steps": 5}  # fmt: skip


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _device_text(device: str) -> str:
    import torch

    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        return f"{props.name} ({props.total_memory // 2**20} MiB), torch {torch.__version__}"
    return (
        f"CPU {platform.machine()} ({platform.processor() or 'unknown'}), torch {torch.__version__}"
    )


def _config(work: Path, tiny: bool, device: str) -> None:
    """The workflow config of part (a): pancreas_multitask alone on a demo cohort."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for name, study in config["studies"].items():
        study["enabled"] = name == "pancreas_multitask"
    config["demo"]["patients"] = 8 if tiny else 40
    config["demo"]["study_patients"] = {}
    config["device"] = device
    nnunet = config["studies"]["pancreas_multitask"]["nnunet"]
    nnunet["folds"] = [0]
    for key, value in (NNUNET_TINY if tiny else NNUNET_GPU).items():
        nnunet[key] = {**nnunet.get(key, {}), **value} if key == "trainer" else value
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def nnunet_part(work: Path, tiny: bool, device: str, cores: int) -> dict[str, Any]:
    """(a): train, predict and evaluate pancreas_multitask; timings from the nnU-Net log."""
    _config(work, tiny, device)
    target = "results/pancreas_multitask/evaluate/nnunet/metrics.json"
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
    command += ["--directory", str(work), "--resources", "gpu=1", "--cores", str(cores), target]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    logs = sorted((work / "results/pancreas_multitask/nnunet").rglob("training_log_*.txt"))
    text = logs[-1].read_text()
    epochs = [float(v) for v in re.findall(r"Epoch time: ([\d.]+) s", text)]
    peak = re.findall(r"peak memory: (\d+) MiB \(([^)]*)\)", text)
    trainer = (NNUNET_TINY if tiny else NNUNET_GPU)["trainer"]
    per_epoch = sum(epochs[1:]) / len(epochs[1:]) if len(epochs) > 1 else epochs[0]
    iterations = trainer["iterations_per_epoch"] + trainer["val_iterations_per_epoch"]
    per_iteration = per_epoch / iterations
    p = PRODUCTION
    projected = p["folds"] * p["epochs"] * (p["iterations"] + p["val_iterations"]) * per_iteration
    metrics = json.loads((work / target).read_text())
    regions = metrics["segmentation"]["regions"]
    subtype = metrics["models"]["model"]["subtype"]
    splits = ("internal_test", "external_test")
    return {
        "schedule": trainer,
        "plans": "CPU plans of config.yaml" if tiny else "oncoflowResEncMPlans (as planned)",
        "patients": 8 if tiny else 40,
        "epoch_times_s": epochs,
        "seconds_per_epoch": per_epoch,
        "iterations_per_s": 1.0 / per_iteration,
        "peak_memory_mib": int(peak[-1][0]) if peak else None,
        "peak_memory_kind": peak[-1][1] if peak else None,
        "projected_production_hours": projected / 3600,
        "production": p,
        "dice": {
            region: {s: regions[region][s]["dice"]["value"] for s in splits if s in regions[region]}
            for region in regions
        },
        "subtype": {
            s: {k: subtype[s][k]["value"] for k in ("auc_macro", "f1_macro")}
            for s in splits
            if s in subtype
        },
        "chain_wall_s": wall,
    }


def loader_part(work: Path, tiny: bool, device: str) -> dict[str, Any]:
    """(b): training_step.py at the two crop sizes; the ratio streamed / preloaded steps per s."""
    out = {}
    for size in (32, 48) if tiny else (128, 224):
        path = work / f"training_step_{size}.json"
        command = [sys.executable, str(HERE / "training_step.py"), "--device", device]
        command += ["--size", str(size), "--out", str(path)]
        if tiny:
            command += ["--workers", "0", "--steps", "2", "--warmup", "1", "--repeats", "1"]
            command += ["--patients", "8", "--batch-size", "4"]
        else:
            command += ["--workers", "8", "--steps", "40", "--warmup", "5", "--repeats", "3"]
        subprocess.run(command, check=True, capture_output=True, text=True)
        result = json.loads(path.read_text())
        out[str(size)] = {
            k: result[k] for k in ("pipeline_steps_per_s", "preloaded_steps_per_s", "ratio")
        }
    return out


def ddpm_part(tiny: bool, device: str) -> dict[str, Any]:
    """(c): seconds per sample of the DDPM network (DDIM and the ancestral projection)."""
    import torch

    from oncoflow.synthesis.diffusion import CosineSchedule, sample
    from oncoflow.synthesis.model import DDPMSettings, build_model

    spec = DDPM_TINY if tiny else DDPM_GPU
    size = spec["size"]
    settings = DDPMSettings(
        size=(size, size, size),
        steps=spec["steps"],
        base_channels=spec["base_channels"],
        channel_mult=spec["channel_mult"],
        attention_levels=spec["attention_levels"],
    )
    torch.manual_seed(0)
    model = build_model(settings).to(device).eval()
    schedule = CosineSchedule(settings.steps)
    condition = torch.zeros(1, 2, size, size, size, device=device)
    timings = []
    with torch.no_grad():
        for _ in range(2):  # the first call warms up (cuDNN autotuning, allocations)
            start = time.perf_counter()
            sample(model, schedule, condition, ddim_steps=spec["ddim_steps"])
            if device == "cuda":
                torch.cuda.synchronize()
            timings.append(time.perf_counter() - start)
    per_sample = timings[-1]
    return {
        "size": size,
        "network": {k: list(v) if isinstance(v, tuple) else v for k, v in spec.items()},
        "ddim_seconds_per_sample": per_sample,
        "ancestral_seconds_per_sample_projected": per_sample / spec["ddim_steps"] * spec["steps"],
    }


def run_suite(work: Path, tiny: bool, cores: int) -> dict[str, Any]:
    """Every part; the JSON of the suite."""
    device = _device()
    tiny = tiny or device == "cpu"
    start = time.perf_counter()
    result = {
        "what": "GPU suite (benchmarks/gpu_suite.py): nnU-Net multitask, liver loader, DDPM",
        "date": time.strftime("%Y-%m-%d"),
        "device": _device_text(device),
        "tiny": tiny,
        "nnunet": nnunet_part(work / "nnunet", tiny, device, cores),
        "loader": loader_part(work, tiny, device),
        "ddpm": ddpm_part(tiny, device),
    }
    result["wall_s"] = time.perf_counter() - start
    return result


def table(result: dict[str, Any]) -> str:
    """The README's GPU table (markdown) of a suite JSON."""
    nn, loader, ddpm = result["nnunet"], result["loader"], result["ddpm"]
    lesion = nn["dice"].get("lesion", {})
    subtype = nn["subtype"]
    lines = [
        f"Measured by `bash benchmarks/gpu_suite.sh` on {result['device']}, {result['date']}"
        f" ({result['wall_s'] / 60:.1f} min in all)"
        + (
            ": the tiny CPU configuration, a check of the suite, not a measurement."
            if result["tiny"]
            else "."
        ),
        "",
        "| part | figure |",
        "|---|---|",
        f"| nnU-Net multitask ({nn['plans']}) | {nn['seconds_per_epoch']:.1f} s per epoch, "
        f"{nn['iterations_per_s']:.2f} iterations/s, peak memory {nn['peak_memory_mib']} MiB "
        f"({nn['peak_memory_kind']}); production schedule (5 folds x 1000 x 300 iterations) "
        f"projected {nn['projected_production_hours']:.1f} h |",
        "| nnU-Net after the short schedule | lesion Dice "
        + ", ".join(f"{s} {v:.3f}" for s, v in lesion.items())
        + "; subtype macro AUC "
        + ", ".join(f"{s} {v['auc_macro']:.3f}" for s, v in subtype.items())
        + " |",
    ]
    for size, row in loader.items():
        lines.append(
            f"| liver loader, {size} px | streamed {row['pipeline_steps_per_s']:.2f} vs preloaded "
            f"{row['preloaded_steps_per_s']:.2f} steps/s, ratio {row['ratio']:.2f} (goal 0.85) |"
        )
    lines.append(
        f"| DDPM sampling, {ddpm['size']}^3 | {ddpm['ddim_seconds_per_sample']:.2f} s per sample "
        f"(DDIM {ddpm['network']['ddim_steps']} steps); ancestral {ddpm['network']['steps']} steps "
        f"projected {ddpm['ancestral_seconds_per_sample_projected']:.1f} s |"
    )
    return "\n".join(lines)


def render(readme: Path, json_path: Path) -> None:
    """Replace the README block between the ``gpu_suite`` markers with the JSON's table."""
    if json_path.is_file():
        body = table(json.loads(json_path.read_text()))
    else:
        body = (
            "Not measured yet: no GPU has run `bash benchmarks/gpu_suite.sh` "
            f"(`benchmarks/{json_path.name}` is missing)."
        )
    if not replace_block(readme, MARK, body):
        msg = f"{readme}: no <!-- {MARK}:begin --> ... <!-- {MARK}:end --> block"
        raise SystemExit(msg)


def main(argv: list[str] | None = None) -> int:
    """Run the suite (or render the README table) and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny CPU configuration")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: temp)")
    parser.add_argument("--out", type=Path, default=None, help="JSON to write")
    parser.add_argument("--cores", type=int, default=8, help="snakemake --cores of part (a)")
    parser.add_argument("--render-only", action="store_true", help="README table from the JSON")
    parser.add_argument("--readme", type=Path, default=README, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.render_only:
        render(args.readme, args.out or HERE / "gpu_suite.json")
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_suite_"))
    result = run_suite(work, args.tiny, args.cores)
    out = args.out or HERE / ("gpu_suite_cpu.json" if result["tiny"] else "gpu_suite.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    if not result["tiny"] and args.out is None:
        render(args.readme, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
