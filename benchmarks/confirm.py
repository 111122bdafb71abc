"""Confirmation run: the model studies on a fresh demo seed, nothing tuned on it.

Every default of the models was chosen on validation folds of the repository's demo seed. This
reruns the whole workflow on another seed (``demo.seed``) in a scratch folder and collects, per
study and target, the first-screen summary of the report (oncoflow.report.summary): the headline
model's test score with its 95 % CI, the oracle and the tabular oracle of the generator, the best
baseline, their paired difference with CI and p, and the permuted-label control.

Usage:
    python benchmarks/confirm.py --seed 7 [--cores 2] [--scale full] [--keep DIR]
        [--studies liver_response nsclc_mmdls ...]

``--studies`` runs only what those studies' report summaries need (the demo cohorts, features,
models and evaluation of those studies); without it, the whole workflow.

Writes ``benchmarks/confirm_<seed>.json`` (rows + scale, seed, wall time) and
``benchmarks/confirm_<seed>.md`` (the same as a Markdown table), and renders that table into the
README between ``<!-- confirm_<seed>:begin -->`` and ``<!-- confirm_<seed>:end -->`` when the
README has those markers (``--render-only`` re-renders from the committed JSON).
``--scale full`` is the science-scale profile of ``make demo-full`` (82 minutes on 2 cores,
benchmarks/results.md); ``smoke`` the default config.yaml (minutes; the figures are not
meaningful at that size, it checks the machinery).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

sys.path.insert(0, str(REPO / "benchmarks"))

from readme_block import replace_block  # noqa: E402

from oncoflow.report.summary import summary_markdown, test_cell  # noqa: E402

SCALES = {"smoke": [], "full": [str(REPO / "config" / "demo-full.yaml")]}


SEED_FILE = "seed.yaml"
"""The config file in a run folder that sets its demo seed (``{"demo": {"seed": S}}``)."""


def head_commit() -> str:
    """The short commit of the repository's HEAD: the code a run starts from."""
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()


def kept_seed(workdir: Path) -> int:
    """The demo seed of a run folder written by :func:`run_workflow` (``--keep DIR``)."""
    return int(yaml.safe_load((workdir / SEED_FILE).read_text())["demo"]["seed"])


def run_workflow(
    workdir: Path, seed: int, scale: str, cores: int, studies: list[str] | None = None
) -> float:
    """Run the workflow on demo seed ``seed`` in ``workdir``; return the wall seconds.

    All of it, or only what the report summaries of ``studies`` need.
    """
    (workdir / "config.yaml").write_text((REPO / "config.yaml").read_text())
    (workdir / SEED_FILE).write_text(yaml.safe_dump({"demo": {"seed": seed}}))
    configs = [*SCALES[scale], str(workdir / SEED_FILE)]
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
    command += ["--directory", str(workdir), "--cores", str(cores), "--configfile", *configs]
    if studies:
        command += ["--", *(f"results/report/{study}/summary.json" for study in studies)]
    start = time.perf_counter()
    with (workdir / "snakemake.log").open("w") as log:
        proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = (workdir / "snakemake.log").read_text()[-3000:]
        msg = f"the workflow failed on seed {seed} in {workdir}:\n{tail}"
        raise SystemExit(msg)
    return time.perf_counter() - start


def collect(workdir: Path) -> list[dict]:
    """Every study's summary rows (results/report/<study>/summary.json), in study order."""
    rows = []
    for path in sorted((workdir / "results" / "report").glob("*/summary.json")):
        rows += json.loads(path.read_text())["rows"]
    return rows


def models_vs_baseline(workdir: Path, rows: list[dict]) -> list[dict]:
    """Every model of every summary row against that row's best baseline, paired on test.

    From ``results/<study>/evaluate/comparisons.json``: the entries ``reference: baseline`` whose
    baseline is the row's (chosen on validation), one per model (ablation rungs and variants
    included), in the order of the file.
    """
    out = []
    for row in rows:
        baseline = (row.get("baseline") or {}).get("label")
        path = workdir / "results" / row["study"] / "evaluate" / "comparisons.json"
        if baseline is None or not path.is_file():
            continue
        for entry in json.loads(path.read_text())["comparisons"]:
            if (entry["reference"], entry["target"], entry["b"]) != (
                "baseline",
                row["target"],
                baseline,
            ):
                continue
            keys = ("estimate", "ci_low", "ci_high", "p_value", "n_patients")
            variant, model = entry["a"].split("/", 1)
            metrics = path.parent / variant / "metrics.json"
            own = (
                test_cell(json.loads(metrics.read_text()), model, row["target"], row["metric"])
                if metrics.is_file()
                else None
            )
            out.append(
                {"study": row["study"], "target": row["target"], "model": entry["a"]}
                | {"test": own, "baseline": baseline}
                | {k: entry.get(k) for k in keys}
            )
    return out


def models_markdown(entries: list[dict]) -> str:
    """The models-vs-baseline entries as a Markdown table."""
    lines = [
        "| study | target | model | test [95 % CI] | best baseline"
        " | model - baseline [95 % CI] | p |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        low, high = e.get("ci_low"), e.get("ci_high")
        interval = "" if low is None or high is None else f" [{low:.3f}, {high:.3f}]"
        own = e.get("test") or {}
        score = "" if own.get("value") is None else f"{own['value']:.3f}"
        if score and own.get("ci_low") is not None and own.get("ci_high") is not None:
            score += f" [{own['ci_low']:.3f}, {own['ci_high']:.3f}]"
        cells = [e["study"], e["target"], e["model"], score, e["baseline"]]
        cells += [f"{e['estimate']:+.3f}{interval}", f"{e['p_value']:.3g}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_readme(seed: int, table: str, readme: Path = REPO / "README.md") -> bool:
    """Replace the README's ``confirm_<seed>`` block by ``table``; False when it has none."""
    return replace_block(readme, f"confirm_{seed}", table)


def markdown(result: dict) -> str:
    """The confirmation tables of a ``confirm_<seed>.json`` with their title lines."""
    commands = "; ".join(run["command"] for run in runs_of(result))
    title = f"Demo seed {result['seed']}, {result['scale']} scale ({commands})\n\n"
    text = title + summary_markdown(result["rows"])
    if result.get("models_vs_baseline"):
        text += "\nEvery model against the best baseline (paired, test patients):\n\n"
        text += models_markdown(result["models_vs_baseline"])
    return text


def main(argv: list[str] | None = None) -> int:
    """Run the workflow on the seed, write confirm_<seed>.json and .md; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True, help="the fresh demo seed")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full", help="demo profile")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    parser.add_argument("--out-dir", type=Path, default=REPO / "benchmarks", help="output folder")
    parser.add_argument("--studies", nargs="+", default=None, help="only these studies")
    parser.add_argument(
        "--render-only", action="store_true", help="re-render the README from confirm_<seed>.json"
    )
    parser.add_argument(
        "--collect",
        type=Path,
        metavar="DIR",
        help="no run: re-collect the kept workdir of this seed's run (--keep DIR) into the JSON"
        " (with --studies: only those studies' rows, merged over the others)",
    )
    args = parser.parse_args(argv)
    stem = args.out_dir / f"confirm_{args.seed}"
    if args.render_only:
        text = markdown(json.loads(stem.with_suffix(".json").read_text()))
        return 0 if render_readme(args.seed, text) else 1
    commit = head_commit()
    if args.collect and args.studies:
        # the named studies' rows of a kept workdir whose jobs of those studies were rerun
        # (e.g. after a default changed), merged over the other studies' rows
        rows = [row for row in collect(args.collect) if row["study"] in args.studies]
        command = f"python benchmarks/confirm.py --seed {args.seed} --scale {args.scale}"
        command += f" --collect DIR --studies {' '.join(args.studies)}"
        run = {"commit": commit, "command": command, "studies": args.studies}
        result = {"seed": args.seed, "scale": args.scale, "runs": [run], "rows": rows}
        result["models_vs_baseline"] = models_vs_baseline(args.collect, rows)
        previous = json.loads(stem.with_suffix(".json").read_text())
        # the kept folder's other jobs ran in the earlier run of these studies: it stays listed
        return write(stem, merged(previous, result, args.studies, replaces_runs=False))
    if args.collect:
        previous = json.loads(stem.with_suffix(".json").read_text())
        rows = collect(args.collect)
        result = {k: v for k, v in previous.items() if k not in PROVENANCE}
        # jobs rerun in the kept folder ran this code
        result["runs"] = [run | {"collected_at": commit} for run in runs_of(previous)]
        result["rows"] = rows
        result["models_vs_baseline"] = models_vs_baseline(args.collect, rows)
        return write(stem, result)
    with tempfile.TemporaryDirectory(prefix=f"confirm_{args.seed}_") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        wall = run_workflow(workdir, args.seed, args.scale, args.cores, args.studies)
        rows = collect(workdir)
        versus = models_vs_baseline(workdir, rows)
    command = f"python benchmarks/confirm.py --seed {args.seed} --scale {args.scale}"
    if args.studies:
        command += " --studies " + " ".join(args.studies)
    run = {"commit": commit, "cores": args.cores, "wall_s": round(wall, 1), "command": command}
    run["studies"] = args.studies or "all"
    result = {"seed": args.seed, "scale": args.scale, "runs": [run], "rows": rows}
    result["models_vs_baseline"] = versus
    previous = stem.with_suffix(".json")
    if args.studies and previous.is_file():
        result = merged(json.loads(previous.read_text()), result, args.studies)
    return write(stem, result)


PROVENANCE = ("commit", "cores", "wall_s", "command", "studies", "collected_at")


def runs_of(result: dict) -> list[dict]:
    """The runs a confirmation JSON was written from (older files hold one, at the top level)."""
    if "runs" in result:
        return list(result["runs"])
    return [{k: result[k] for k in PROVENANCE if k in result}]


def merged(previous: dict, new: dict, studies: list[str], *, replaces_runs: bool = True) -> dict:
    """``new`` (a run of ``studies``) over ``previous``: the other studies' rows are kept.

    Each row keeps the run it came from in ``runs``; a previous run whose studies are all
    rerun is dropped, unless ``replaces_runs`` is false (a ``--collect`` of a kept folder, whose
    other jobs that run trained). Refused when the scales differ.
    """
    if previous.get("scale") != new["scale"]:
        scales = f"{previous.get('scale')}, this run {new['scale']}"
        msg = f"confirm_{new['seed']}.json is of scale {scales}: run all its studies again"
        raise SystemExit(msg)
    kept_runs = [
        run
        for run in runs_of(previous)
        if not replaces_runs
        or run.get("studies") == "all"
        or set(run.get("studies", [])) - set(studies)
    ]
    out = {k: v for k, v in previous.items() if k not in PROVENANCE}
    out["runs"] = kept_runs + new["runs"]
    for key in ("rows", "models_vs_baseline"):
        old = [row for row in previous.get(key, []) if row["study"] not in studies]
        out[key] = old + new[key]
    return out


def write(stem: Path, result: dict) -> int:
    """Write ``<stem>.json`` and ``.md``; render the README block from the committed folder only.

    A result written elsewhere (``--out-dir``) leaves the README alone: its block is generated
    from ``benchmarks/confirm_<seed>.json``, which such a run neither reads nor merges into.
    """
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    if stem.parent.resolve() == (REPO / "benchmarks").resolve():
        render_readme(result["seed"], markdown(result))
    print(stem.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
