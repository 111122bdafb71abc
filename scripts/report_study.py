"""One study's section of the run report (HTML fragment with inlined figures, + the PNGs).

Reads the study's validation report, converted images (mask overlays), slides (thumbnails), the
final-fold ComBat statistics and the evaluate stage's metrics and comparisons.

Example:
    python scripts/report_study.py --study net_survival --settings '{"model": "cox"}' \
        --cohort-report results/qc/net_survival/cohort_report.json --cohort demo/net_survival \
        --converted results/converted --metrics raw=results/net_survival/evaluate/raw/metrics.json \
        --out results/report/net_survival/section.html --figures results/report/net_survival/figures
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from oncoflow import cli
from oncoflow.errors import OncoflowError
from oncoflow.report.html import study_section
from oncoflow.report.qc import mask_panels, slide_panels
from oncoflow.report.summary import summary_rows


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        msg = f"{path}: cannot read JSON ({exc})"
        raise OncoflowError(msg) from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--settings", type=json.loads, default={}, help="study config as JSON")
    parser.add_argument("--cohort-report", type=Path, required=True, help="validation report")
    parser.add_argument("--cohort", type=Path, required=True, help="cohort folder")
    parser.add_argument("--converted", type=Path, required=True, help="converted images root")
    parser.add_argument("--qc-patients", type=int, default=24, help="patients in QC panels")
    parser.add_argument(
        "--harmonize", type=cli.labelled_path, nargs="*", default=[], metavar="SOURCE=JSON",
        help="ComBat statistics of the final fold per feature source",
    )  # fmt: skip
    parser.add_argument(
        "--metrics", type=cli.labelled_path, nargs="*", default=[], metavar="VARIANT=JSON",
        help="metrics.json per trained variant (permuted = negative control)",
    )  # fmt: skip
    parser.add_argument("--comparisons", type=Path, help="comparisons.json of the study")
    parser.add_argument("--title", default=None, help="section heading (default: the study)")
    parser.add_argument(
        "--ddpm", type=Path, nargs=3, default=None, metavar=("METRICS", "PANEL", "LOSS"),
        help="diffusion model: metrics.json, slice panel PNG and loss curve PNG",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="HTML fragment to write")
    parser.add_argument("--figures", type=Path, required=True, help="folder for the PNGs")
    parser.add_argument(
        "--summary", type=Path, help="summary.json to write: the study's first-screen rows"
    )
    parser.add_argument(
        "--ladder", default="", help="ablation ladder, simplest variant first (comma-separated)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _main(args: argparse.Namespace) -> None:
    images = pd.read_csv(
        args.cohort / "images.csv", dtype={"patient_id": str}, keep_default_na=False
    )
    patients = sorted(images["patient_id"].unique())[: args.qc_patients]
    slides = images[(images["modality"] == "WSI") & images["patient_id"].isin(patients)]
    slide_paths = [
        (p, path if path.is_absolute() else args.cohort / path)
        for p, path in zip(slides["patient_id"], map(Path, slides["path"]), strict=True)
    ]
    oracle_path = args.cohort / "oracle.json"
    metrics = {v: _read_json(p) for v, p in args.metrics}
    # a segmentation model's metrics.json carries its Dice summary (evaluate.py --segmentation)
    segmentation = next((m["segmentation"] for m in metrics.values() if "segmentation" in m), None)
    oracle = _read_json(oracle_path) if oracle_path.is_file() else {}
    comparisons = _read_json(args.comparisons)["comparisons"] if args.comparisons else []
    section, pngs = study_section(
        args.study,
        args.settings,
        cohort_report=_read_json(args.cohort_report),
        qc_panels=mask_panels(args.converted, patients, f"{args.study}: masks on images"),
        slide_panels=slide_panels(slide_paths, f"{args.study}: slides"),
        harmonize={s: _read_json(p) for s, p in args.harmonize},
        metrics=metrics,
        segmentation=segmentation,
        comparisons=comparisons,
        oracle=oracle,
        title=args.title,
        ladder=[v for v in args.ladder.split(",") if v],
        synthesis=(
            {
                "metrics": _read_json(args.ddpm[0]),
                "panel": args.ddpm[1].read_bytes(),
                "loss": args.ddpm[2].read_bytes(),
            }
            if args.ddpm
            else None
        ),
    )
    args.figures.mkdir(parents=True, exist_ok=True)
    for name, png in pngs.items():
        (args.figures / f"{name}.png").write_bytes(png)
    cli.write_text(args.out, section)
    if args.summary:
        rows = summary_rows(args.study, metrics, comparisons, oracle)
        cli.write_json(args.summary, {"study": args.study, "rows": rows}, args)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run(_main, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
