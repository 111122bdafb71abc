"""One setting of a study, switched on a kept run: the models' pooled validation scores, both ways.

How a default is adopted (issue 23's confirmation protocol): on validation folds only. This takes a
run kept by ``confirm.py --keep DIR``, copies it, retrains the named models' folds in the copy with
one setting of the study changed (``--set train.lesion_means=false``), re-evaluates them, and writes
for each model and target the pooled out-of-fold validation score (the ``MAIN_METRIC`` the report
chooses its headline model by: AUC, macro AUC or Harrell's C) of the kept run and of the copy, with
the per-fold scores. Test rows are never read: the copy's metrics.json holds them, the JSON does
not.

Usage:
    python benchmarks/validation_ablation.py --workdir DIR --study liver_response \
        --set train.lesion_means=false --models relation_net multi_sequence single_temporal \
        [--cores 2] [--scratch DIR2]

Writes ``benchmarks/validation_ablation_<study>_<key>_<seed>.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

sys.path.insert(0, str(REPO / "benchmarks"))

from confirm import SCALES, SEED_FILE, head_commit, kept_seed  # noqa: E402

from oncoflow import dag  # noqa: E402
from oncoflow.report.models import MAIN_METRIC  # noqa: E402


def override(study: str, assignment: str) -> tuple[str, Any, dict]:
    """``KEY=VALUE`` (KEY dotted under ``studies.<study>``, VALUE YAML) as a config overlay."""
    key, _, text = assignment.partition("=")
    if not key or not _:
        raise SystemExit(f"--set wants KEY=VALUE, got {assignment!r}")
    value = yaml.safe_load(text)
    node: dict = {key.split(".")[-1]: value}
    for part in reversed(key.split(".")[:-1]):
        node = {part: node}
    return key, value, {"studies": {study: node}}


def overrides(study: str, assignments: list[str]) -> tuple[str, Any, dict]:
    """Several ``KEY=VALUE`` as one candidate: keys joined by ``+``, one merged overlay.

    One assignment gives :func:`override`'s key and value; several give ``{key: value}``.
    """
    parts = [override(study, a) for a in assignments]
    overlay: dict = {}
    for _, _, node in parts:
        _merge(overlay, node)
    keys = [k for k, _, _ in parts]
    value = parts[0][1] if len(parts) == 1 else {k: v for k, v, _ in parts}
    return "+".join(keys), value, overlay


def _merge(into: dict, node: dict) -> None:
    for k, v in node.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


def _value(cell: float | dict) -> float:
    """A metric cell: a number (per fold) or ``{"value", "ci_low", "ci_high"}`` (pooled)."""
    return float(cell["value"] if isinstance(cell, dict) else cell)


def validation_scores(workdir: Path, study: str, model: str) -> dict[str, dict]:
    """Per target: pooled and per-fold validation ``MAIN_METRIC`` of a deep model's metrics.json."""
    path = workdir / dag.fill(dag.METRICS, study=study, variant=model)
    metrics = json.loads(path.read_text())
    key = MAIN_METRIC[metrics["kind"]]
    out = {}
    for target, entry in metrics["models"]["model"].items():
        validation = entry["validation"]
        out[target] = {
            "metric": key,
            "pooled": _value(validation["pooled"][key]),
            "per_fold": {f: _value(v[key]) for f, v in validation["per_fold"].items()},
        }
    return out


CAPTURE: dict[str, Any] = {"capture_output": True, "text": True, "check": False}
# the jobs a switched training setting may rerun: the folds, their merged table, its evaluation
ALLOWED_RULES = {"train_model", "collect_model", "evaluate"}


def snakemake_command(
    copy: Path, study: str, models: list[str], cores: int, scale: str, *extra: str
) -> list[str]:
    """The workflow call of the copy: confirm.py's config files, the overlay, the models' metrics.

    ``extra`` options (e.g. ``-n``) go before the targets.
    """
    configs = [*SCALES[scale], str(copy / SEED_FILE), str(copy / "ablation.yaml")]
    targets = [dag.fill(dag.METRICS, study=study, variant=m) for m in models]
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
    command += ["--directory", str(copy), "--cores", str(cores), "--configfile", *configs]
    command += ["--forcerun", "train_model", "--rerun-triggers", "mtime", "params", *extra]
    return [*command, "--", *targets]


def rule_counts(summary: str) -> dict[str, int]:
    """``{rule: jobs}`` from the job table of ``snakemake -n --quiet rules``."""
    counts = {}
    for line in summary.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("job", "total"):
            counts[parts[0]] = int(parts[1])
    return counts


def logged_wall(log: Path) -> float | None:
    """Seconds of the last ``Elapsed time: H:MM:SS.s`` line of a Snakemake log, if any."""
    lines = [x for x in log.read_text().splitlines() if x.startswith("Elapsed time:")]
    if not lines:
        return None
    hours, minutes, seconds = lines[-1].split(":", 1)[1].strip().split(":")
    return 3600 * int(hours) + 60 * int(minutes) + float(seconds)


def retrain(
    kept: Path, copy: Path, study: str, models: list[str], overlay: dict, cores: int, scale: str
) -> float:
    """Copy the kept run, retrain and re-evaluate ``models`` with the overlay; the wall seconds."""
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(kept, copy, symlinks=True)  # copy2 keeps mtimes: nothing upstream reruns
    (copy / "ablation.yaml").write_text(yaml.safe_dump(overlay))
    command = snakemake_command(copy, study, models, cores, scale)
    dry = subprocess.run(
        snakemake_command(copy, study, models, cores, scale, "-n", "--quiet", "rules"), **CAPTURE
    )
    print(dry.stdout.strip() or dry.stderr.strip()[-2000:])
    if dry.returncode != 0 or set(rule_counts(dry.stdout)) - ALLOWED_RULES:
        raise SystemExit(f"more than the models' training would rerun in {copy} (see above)")
    start = time.perf_counter()
    with (copy / "ablation.log").open("w") as log:
        proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = (copy / "ablation.log").read_text()[-3000:]
        raise SystemExit(f"the retraining failed in {copy}:\n{tail}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Retrain with the setting switched and write the validation comparison; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a run kept by confirm.py")
    parser.add_argument("--study", required=True, help="the study whose setting is switched")
    parser.add_argument(
        "--set",
        dest="assignments",
        nargs="+",
        required=True,
        help="KEY=VALUE under the study (several: one candidate that switches them together)",
    )
    parser.add_argument("--models", nargs="+", required=True, help="deep models to retrain")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full", help="the run's profile")
    parser.add_argument("--scratch", type=Path, help="the copy (default: WORKDIR.ablation)")
    parser.add_argument(
        "--collect", action="store_true", help="no retraining: read the copy of an earlier call"
    )
    parser.add_argument("--out-dir", type=Path, default=REPO / "benchmarks", help="output folder")
    args = parser.parse_args(argv)
    key, value, overlay = overrides(args.study, args.assignments)
    seed = kept_seed(args.workdir)
    copy = args.scratch or args.workdir.with_name(args.workdir.name + ".ablation")
    if args.collect:  # the copy of an earlier call, its jobs done: read it again
        if yaml.safe_load((copy / "ablation.yaml").read_text()) != overlay:
            raise SystemExit(f"{copy} was retrained with another setting (its ablation.yaml)")
        wall = logged_wall(copy / "ablation.log")
    else:
        wall = retrain(args.workdir, copy, args.study, args.models, overlay, args.cores, args.scale)
    rows = []
    for model in args.models:
        kept = validation_scores(args.workdir, args.study, model)
        switched = validation_scores(copy, args.study, model)
        for target, score in kept.items():
            row = {"model": model, "target": target, "metric": score["metric"]}
            row |= {"kept": score, "switched": switched[target]}
            row["difference"] = round(switched[target]["pooled"] - score["pooled"], 4)
            rows.append(row)
            print(
                f"{model} {target}: {score['metric']} kept {score['pooled']:.3f},"
                f" {key}={value!r} {switched[target]['pooled']:.3f}"
            )
    commit = head_commit()
    command = f"python benchmarks/validation_ablation.py --workdir DIR --study {args.study}"
    command += f" --set {' '.join(args.assignments)} --models {' '.join(args.models)}"
    result = {"seed": seed, "study": args.study, "setting": key, "switched_to": value}
    result |= {"command": command, "commit": commit, "cores": args.cores}
    result["wall_s"] = None if wall is None else round(wall, 1)
    result["collected"] = bool(args.collect)
    result["split"] = "validation (pooled out-of-fold; test rows not read)"
    result["rows"] = rows
    short = "_".join(k.split(".")[-1] for k in key.split("+"))
    name = f"validation_ablation_{args.study}_{short}_{seed}.json"
    (args.out_dir / name).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out_dir / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
