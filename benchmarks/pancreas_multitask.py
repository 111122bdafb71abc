"""pancreas_multitask at science scale: Dice, subtype, baselines, control, oracle and wall time.

Runs the pancreas_multitask chain of ``make demo-full`` (config/demo-full.yaml, that study
only) on a demo seed, or reads a results tree that ran it (``--from``), and writes
``benchmarks/pancreas_multitask_<seed>.json`` plus the README table between
``<!-- pancreas_multitask:begin -->`` and ``<!-- pancreas_multitask:end -->`` (for the
repository's seed; ``--render-only`` re-renders from the committed JSON).

Usage:
    python benchmarks/pancreas_multitask.py --seed 20261123 [--cores 2] [--keep DIR]
    python benchmarks/pancreas_multitask.py --seed 20261123 --from DIR   # collect only
    python benchmarks/pancreas_multitask.py --seed 20261123 --from DIR --in-parts  # no wall time
    python benchmarks/pancreas_multitask.py --seed 20261123 --render-only
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"
sys.path.insert(0, str(HERE))

from readme_block import replace_block  # noqa: E402

STUDY = "pancreas_multitask"
README_SEED = 20261123
"""The repository's demo seed: its figures are the README's."""
SPLITS = ("validation", "internal_test", "external_test")
MODELS = ("nnunet", "baseline_size", "baseline_lesion", "permuted")
PAIRED = ("estimate", "ci_low", "ci_high", "p_value")
"""nnunet minus a baseline, paired on the test patients (macro AUC, comparisons.json)."""


OTHER_STUDIES = (
    "pancreas_progression",
    "net_survival",
    "lung_synthesis",
    "liver_response",
    "nsclc_mmdls",
)
"""The studies a pancreas_multitask run turns off."""


def run_workflow(workdir: Path, overlay: dict[str, Any], cores: int, name: str) -> float:
    """Snakemake at science scale in ``workdir`` with ``overlay`` merged last; wall seconds.

    The overlay is written to ``workdir/<name>`` (config.yaml, then config/demo-full.yaml, then
    it), and Snakemake's output to ``workdir/snakemake.log``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / name).write_text(yaml.safe_dump(overlay))
    configs = [str(REPO / "config.yaml"), str(REPO / "config/demo-full.yaml")]
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
    command += ["--directory", str(workdir), "--cores", str(cores)]
    command += ["--configfile", *configs, str(workdir / name)]
    start = time.perf_counter()
    with (workdir / "snakemake.log").open("w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)
    return time.perf_counter() - start


def run_chain(workdir: Path, seed: int, cores: int) -> float:
    """Run the study's chain at science scale in ``workdir``; return the wall seconds."""
    only = {
        "demo": {"seed": seed},
        "studies": {name: {"enabled": False} for name in OTHER_STUDIES},
    }
    # the file name of confirm.py's kept runs, so that control_runs.py reads the seed of either
    return run_workflow(workdir, only, cores, "seed.yaml")


def _interval(entry: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(entry[k]), 4) for k in ("value", "ci_low", "ci_high")}


def _classification(metrics: dict[str, Any]) -> dict[str, Any]:
    """Macro AUC and macro-F1 (value and CI) per split of a model's ``subtype``."""
    target = next(iter(metrics["models"].values()))["subtype"]
    out = {}
    for split in SPLITS:
        part = target["validation"]["pooled"] if split == "validation" else target.get(split)
        if part:
            out[split] = {m: _interval(part[m]) for m in ("auc_macro", "f1_macro")}
            if "n_runs" in part:
                out[split]["n_runs"] = int(part["n_runs"])
    return out


def _head_auc(workdir: Path) -> list[float]:
    """The head's validation macro AUC logged at each epoch of fold 0's training."""
    logs = sorted(workdir.glob(f"results/{STUDY}/nnunet/nnUNet_results/*/*/fold_0/training_log*"))
    if not logs:
        return []
    text = logs[-1].read_text()
    return [
        float(v) for v in re.findall(r"head on \d+ validation case\(s\): macro AUC ([\d.]+)", text)
    ]


def _chain_seconds(workdir: Path) -> dict[str, float]:
    """Wall seconds of the study's nnU-Net jobs (Snakemake's benchmark files), by step."""
    out: dict[str, float] = {}
    for tsv in sorted(workdir.glob(f"logs/benchmarks/nnunet/{STUDY}/**/*.tsv")):
        step = (
            re.sub(r"_fold_\d+|_\w+$", "", tsv.stem) if tsv.stem.startswith("train") else tsv.stem
        )
        seconds = float(tsv.read_text().splitlines()[1].split("\t")[0])
        out[step] = round(out.get(step, 0.0) + seconds, 1)
    return out


def wall_from_log(workdir: Path) -> float | None:
    """Wall seconds of the last Snakemake run in ``workdir`` (for ``--from``).

    From the start in its log's file name to the log's last write.
    """
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    if not logs:
        return None
    start = datetime.strptime(logs[-1].name.split(".")[0], "%Y-%m-%dT%H%M%S")
    end = datetime.fromtimestamp(logs[-1].stat().st_mtime)
    return round((end - start).total_seconds(), 1)


def collect(workdir: Path) -> dict[str, Any]:
    """The figures of one results tree."""
    root = workdir / "results" / STUDY
    oracle = json.loads((workdir / "resources/demo" / STUDY / "oracle.json").read_text())
    nnunet = json.loads((root / "evaluate/nnunet/metrics.json").read_text())
    dice = {
        region: {s: _interval(v["dice"]) for s, v in splits.items() if s in SPLITS}
        for region, splits in nnunet["segmentation"]["regions"].items()
    }
    models = {}
    for model in MODELS:
        path = root / "evaluate" / model / "metrics.json"
        if path.is_file():
            models[model] = _classification(json.loads(path.read_text()))
    config = yaml.safe_load((REPO / "config/demo-full.yaml").read_text())
    splits = pd.read_csv(root / "splits.csv")["split"].value_counts()
    comparisons = json.loads((root / "evaluate/comparisons.json").read_text())["comparisons"]
    paired = {
        row["b"].split("/")[0]: {k: round(float(row[k]), 4) for k in PAIRED}
        for row in comparisons
        if row["a"].split("/")[0] == "nnunet" and row["b"].split("/")[0] in MODELS
    }
    return {
        "patients": {str(k): int(v) for k, v in sorted(splits.items())},
        "paired_test": paired,
        "dice": dice,
        "subtype": models,
        "oracle": oracle["subtype"],
        "head_validation_auc_per_epoch": _head_auc(workdir),
        "chain_seconds": _chain_seconds(workdir),
        "trainer": config["studies"][STUDY]["nnunet"]["trainer"],
    }


def _cell(entry: dict[str, float] | None) -> str:
    if not entry:
        return "-"
    return f"{entry['value']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"


def _header(title: str, columns: tuple[str, ...]) -> list[str]:
    """The first lines of a Markdown table: its title line, a blank line, the column header."""
    return [title, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def table(result: dict[str, Any]) -> str:
    """The README table of one seed's figures."""
    oracle = result["oracle"]
    lines = [
        f"Demo seed {result['seed']}, `python benchmarks/pancreas_multitask.py --seed "
        f"{result['seed']}` (`benchmarks/pancreas_multitask_{result['seed']}.json`). Oracle: "
        f"macro AUC {oracle['value']:.3f}, macro-F1 {oracle['value_macro_f1']:.3f} "
        "(macro-F1-optimal rule). Test = internal + external test, 95 % patient-bootstrap CIs.",
        "",
        "| model | split | whole pancreas Dice | lesion Dice | subtype macro AUC | macro-F1 |",
        "|---|---|---|---|---|---|",
    ]
    if result.get("patients"):
        counts = ", ".join(f"{k} {v}" for k, v in result["patients"].items())
        lines[0] += f" Patients: {counts}."
    if result.get("wall_s"):
        lines[0] += f" Wall time of the chain: {result['wall_s'] / 60:.0f} min."
    dice = result["dice"]
    regions = ["whole_pancreas", "lesion"]
    for model, splits in result["subtype"].items():
        for split in SPLITS:
            if split not in splits:
                continue
            seg = [_cell(dice[r].get(split)) if model == "nnunet" else "" for r in regions]
            runs = f" (mean of {splits[split]['n_runs']} runs)" if "n_runs" in splits[split] else ""
            lines.append(
                f"| {model}{runs} | {split} | {seg[0]} | {seg[1]} | "
                f"{_cell(splits[split]['auc_macro'])} | {_cell(splits[split]['f1_macro'])} |"
            )
    paired = result.get("paired_test", {})
    if paired:
        parts = [
            f"{name} {v['estimate']:+.3f} [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}] "
            f"(p {v['p_value']:.3g})"
            for name, v in paired.items()
        ]
        lines += ["", "nnunet minus baseline, subtype macro AUC paired on the test patients: "
                  + "; ".join(parts) + "."]  # fmt: skip
    seconds = result.get("chain_seconds", {})
    if seconds:
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
        lines += ["", f"Wall time of the nnU-Net jobs (Snakemake benchmark files): {parts}."]
    return "\n".join(lines)


def seeds_table(results: list[dict[str, Any]]) -> str:
    """One row per other seed: test figures of the nnU-Net, the baselines and the control."""
    lines = _header(
        "Other demo seeds (no test split chose anything; the validation cases of seeds 5 and 43 "
        "chose the head's inputs; `python benchmarks/pancreas_multitask.py --seed S`, "
        "`benchmarks/pancreas_multitask_<S>.json`), test figures:",
        ("seed", "patients", "split", "lesion Dice", "nnunet macro AUC", "nnunet macro-F1",
         "baseline_lesion macro AUC", "permuted macro AUC", "oracle macro AUC / macro-F1"),
    )  # fmt: skip
    for result in results:
        subtype = result["subtype"]
        n = sum(result.get("patients", {}).values()) or "-"
        oracle = result["oracle"]
        for split in SPLITS[1:]:
            nnunet = subtype.get("nnunet", {}).get(split, {})
            lesion = _cell(result["dice"]["lesion"].get(split))
            lines.append(
                f"| {result['seed']} | {n} | {split} | {lesion} "
                f"| {_cell(nnunet.get('auc_macro'))} | {_cell(nnunet.get('f1_macro'))} "
                f"| {_cell(subtype.get('baseline_lesion', {}).get(split, {}).get('auc_macro'))} "
                f"| {_cell(subtype.get('permuted', {}).get(split, {}).get('auc_macro'))} "
                f"| {oracle['value']:.3f} / {oracle['value_macro_f1']:.3f} |"
            )
    return "\n".join(lines)


def _test_value(result: dict[str, Any], split: str, metric: str) -> float:
    """The nnU-Net's figure of one split: lesion Dice or a subtype metric."""
    if metric == "lesion_dice":
        return float(result["dice"]["lesion"][split]["value"])
    return float(result["subtype"]["nnunet"][split][metric]["value"])


def acceptance_table(results: list[dict[str, Any]]) -> str:
    """Issue 24's acceptance on each seed's test splits, from the JSON figures."""
    lines = _header(
        "Issue 24's acceptance on the test splits (macro AUC >= 0.75, macro-F1 within 0.15 of "
        "the oracle's macro-F1-optimal rule, lesion Dice >= 0.5):",
        ("seed", "split", "macro AUC >= 0.75", "macro-F1 within 0.15 of the oracle",
         "lesion Dice >= 0.5"),
    )  # fmt: skip
    for result in results:
        oracle_f1 = result["oracle"]["value_macro_f1"]
        for split in SPLITS[1:]:
            auc = _test_value(result, split, "auc_macro")
            f1 = _test_value(result, split, "f1_macro")
            dice = _test_value(result, split, "lesion_dice")
            cells = (
                f"{'yes' if auc >= 0.75 else 'no'} ({auc:.3f})",
                f"{'yes' if oracle_f1 - f1 <= 0.15 else 'no'} ({f1:.3f} vs {oracle_f1:.3f})",
                f"{'yes' if dice >= 0.5 else 'no'} ({dice:.3f})",
            )
            lines.append(f"| {result['seed']} | {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def calibration_table(results: list[dict[str, Any]]) -> str:
    """Each seed without and with the calibration (``pancreas_multitask_<S>_uncalibrated.json``).

    The uncalibrated files are the seed's JSON as committed before the calibration was turned
    on (``git show 9b6acb5:benchmarks/pancreas_multitask_<S>.json``).
    """
    lines = _header(
        "The same seeds before the calibration was turned on (`benchmarks/"
        "pancreas_multitask_<S>_uncalibrated.json`, the JSON of commit 9b6acb5) -> today's JSON "
        "(the calibration on; since 2026-12-07 the refit head reads the lesion statistics alone, "
        "`head_statistics: true, head_descriptor: false`, on a network trained again: nnU-Net's "
        "training on the CPU is not bit-reproducible):",
        ("seed", "split", "lesion Dice", "subtype macro AUC", "macro-F1"),
    )
    metrics = ("lesion_dice", "auc_macro", "f1_macro")
    for result in results:
        path = HERE / f"pancreas_multitask_{result['seed']}_uncalibrated.json"
        if not path.exists():
            continue
        before = json.loads(path.read_text())
        for split in SPLITS:
            cells = [
                f"{_test_value(before, split, m):.3f} -> {_test_value(result, split, m):.3f}"
                for m in metrics
            ]
            lines.append(f"| {result['seed']} | {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seed_results() -> list[dict[str, Any]]:
    """Every committed seed's JSON (``pancreas_multitask_<S>.json``), the README's seed first."""
    results = []
    for path in sorted(HERE.glob("pancreas_multitask_*.json")):
        if re.fullmatch(r"pancreas_multitask_\d+\.json", path.name):
            results.append(json.loads(path.read_text()))
    return sorted(results, key=lambda r: r["seed"] != README_SEED)


def readme_text(readme_result: dict[str, Any]) -> str:
    """The README block: the README's seed, the other seeds, the acceptance, the calibration.

    The repository's seed in full, one row per split of every other committed seed, issue 24's
    acceptance on each seed's test splits and each seed without / with the calibration.
    """
    others = [r for r in seed_results() if r["seed"] != README_SEED]
    parts = [table(readme_result)]
    if others:
        parts.append(seeds_table(others))
    everyone = [readme_result, *others]
    parts += [acceptance_table(everyone), calibration_table(everyone)]
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run or collect, write the JSON and render the README table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=README_SEED, help="demo seed")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores")
    parser.add_argument("--keep", type=Path, default=None, help="run in this folder and keep it")
    parser.add_argument("--from", dest="source", type=Path, default=None, help="collect only")
    parser.add_argument("--render-only", action="store_true", help="README table from the JSON")
    parser.add_argument(
        "--in-parts",
        action="store_true",
        help="with --from: the tree was rerun in parts (its last run is not the chain): the wall "
        "time stays that of the seed's JSON (its full run), or none",
    )
    args = parser.parse_args(argv)
    out = HERE / f"pancreas_multitask_{args.seed}.json"
    if not args.render_only:
        wall = None
        if args.source is not None:
            workdir = args.source
            wall = wall_from_log(workdir)
            if args.in_parts:
                wall = json.loads(out.read_text()).get("wall_s") if out.is_file() else None
        else:
            workdir = args.keep or Path(tempfile.mkdtemp(prefix="pancreas_multitask_"))
            workdir.mkdir(parents=True, exist_ok=True)
            wall = round(run_chain(workdir, args.seed, args.cores), 1)
        result = {"seed": args.seed, "wall_s": wall, **collect(workdir)}
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {out}")
    result = json.loads(out.read_text())
    print(table(result))
    readme_seed = json.loads((HERE / f"pancreas_multitask_{README_SEED}.json").read_text())
    replace_block(REPO / "README.md", "pancreas_multitask", readme_text(readme_seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
