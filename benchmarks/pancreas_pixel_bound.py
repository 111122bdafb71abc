"""What pancreas_multitask's CT shows of the subtype per test split, beside oracle and models.

The oracle of ``oracle.json`` (``value``, ``value_macro_f1``) scores the Bayes posterior of the
three planted descriptors, known exactly. A model sees the CT through each site's scanner: the
external site's scanner is the noisiest and blurriest (20 HU noise, 1.8 mm PSF against 10 / 15 HU
and 0.6 / 1.2 mm at the training sites, docs/demo.md), and the subtype's texture is a correlated
field of 0.9 voxel width, which a PSF of about one voxel smooths away. ``value_pixels`` and
``value_pixels_macro_f1`` score the posterior of an observer who knows the mechanism and the
site's scanner and reads the lesion-core voxels and the lesion's shape
(:func:`oncoflow.demo.pancreas_multitask.pixel_posterior`), with the same macro-F1 rule as the
oracle's. Neither is fitted to anything; the oracle is not moved: the pixel figure is shown beside
it, so a reader sees how much of the gap between a model and the oracle is the scanner's.

This script regenerates each seed's cohort from the mechanism (no model, no pipeline run) and
reports, on internal_test and external_test, the macro AUC and macro-F1 of the oracle, of the
pixel observer, and (read when the table is written) of the refit nnU-Net head and
``baseline_lesion`` of ``benchmarks/pancreas_multitask_<seed>.json``. Writes
``benchmarks/pancreas_pixel_bound.json`` and the README block ``pancreas_pixel_bound``.

Usage:
    python benchmarks/pancreas_pixel_bound.py --seeds 20261123 43 5 7 19 [--patients 120]
    python benchmarks/pancreas_pixel_bound.py --render-only
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

from readme_block import replace_block  # noqa: E402

from oncoflow.demo.pancreas_multitask import (  # noqa: E402
    PancreasMultitask,
    macro_f1_rule,
    subtype_posterior,
)
from oncoflow.metrics.classification import macro_auc, macro_f1  # noqa: E402
from oncoflow.metrics.decision import weighted_argmax  # noqa: E402

OUT = HERE / "pancreas_pixel_bound.json"
SPLITS = ("internal_test", "external_test")
MODELS = ("nnunet", "baseline_lesion")


def scores(y: np.ndarray, posterior: np.ndarray) -> dict[str, float]:
    """Macro AUC and macro-F1 (the mechanism's macro-F1 rule) of a posterior."""
    f1 = macro_f1(y, weighted_argmax(posterior, macro_f1_rule()))
    return {"auc_macro": round(float(macro_auc(y, posterior)), 4), "f1_macro": round(f1, 4)}


def model_figures(seed: int) -> dict[str, dict[str, dict[str, float]]]:
    """Test macro AUC / macro-F1 per split of the models in ``pancreas_multitask_<seed>.json``."""
    path = HERE / f"pancreas_multitask_{seed}.json"
    if not path.exists():
        return {}
    subtype = json.loads(path.read_text())["subtype"]
    return {
        model: {
            split: {m: subtype[model][split][m]["value"] for m in ("auc_macro", "f1_macro")}
            for split in SPLITS
        }
        for model in MODELS
        if model in subtype
    }


def measure(seed: int, patients: int) -> dict[str, Any]:
    """Oracle and pixel-observer figures per test split of one seed."""
    gen = PancreasMultitask(seed, patients)
    pats = gen.patients()
    tables = gen.tables(pats)
    with tempfile.TemporaryDirectory() as tmp:
        seen = {p.patient_id: gen.render(p, gen.image_specs(p), Path(tmp)) for p in pats}
    split = tables.splits.set_index("patient_id")["split"]
    y_all = tables.outcomes.set_index("patient_id")["subtype"].astype(int)
    oracle = subtype_posterior(np.array([p.latent["descriptors"] for p in pats]))
    oracle = dict(zip([p.patient_id for p in pats], oracle, strict=True))
    result: dict[str, Any] = {"seed": seed, "patients": patients}
    for name in SPLITS:
        ids = [p.patient_id for p in pats if split[p.patient_id] == name]
        y = y_all[ids].to_numpy()
        pixels = np.array([[seen[i][f"p_pixels_{k}"] for k in range(3)] for i in ids])
        result[name] = {
            "rows": len(ids),
            "oracle": scores(y, np.array([oracle[i] for i in ids])),
            "pixels": scores(y, pixels),
        }
    return result


def table(results: list[dict[str, Any]]) -> str:
    """The README block: per seed and split, oracle / pixels / models (macro AUC, macro-F1)."""
    seeds = " ".join(str(r["seed"]) for r in results)
    lines = [
        "What the CT shows of the subtype on each test split (`python "
        f"benchmarks/pancreas_pixel_bound.py --seeds {seeds}`, "
        "`benchmarks/pancreas_pixel_bound.json`; macro AUC / macro-F1, the mechanism's "
        "macro-F1 rule for the oracle and the pixel observer, each model's own rule):",
        "",
        "| seed | split (rows) | oracle (descriptors known) | pixel observer (lesion core + shape) "
        "| nnU-Net refit head | baseline_lesion |",
        "|---|---|---|---|---|---|",
    ]

    def cell(entry: dict[str, float] | None) -> str:
        return "" if entry is None else f"{entry['auc_macro']:.3f} / {entry['f1_macro']:.3f}"

    for r in results:
        figures = model_figures(r["seed"])
        for name in SPLITS:
            s = r[name]
            models = [cell(figures.get(m, {}).get(name)) for m in MODELS]
            lines.append(
                f"| {r['seed']} | {name} ({s['rows']}) | {cell(s['oracle'])} "
                f"| {cell(s['pixels'])} | {' | '.join(models)} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure the seeds (or render the JSON), write the JSON and the README block."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[20261123, 43, 5, 7, 19])
    parser.add_argument("--patients", type=int, default=120, help="science-scale cohort size")
    parser.add_argument("--render-only", action="store_true", help="README block from the JSON")
    args = parser.parse_args(argv)
    if args.render_only:
        results = json.loads(OUT.read_text())["seeds"]
    else:
        results = []
        for seed in args.seeds:
            results.append(measure(seed, args.patients))
            print(json.dumps({k: results[-1][k] for k in SPLITS}), flush=True)
        OUT.write_text(json.dumps({"seeds": results}, indent=1) + "\n")
    replace_block(REPO / "README.md", "pancreas_pixel_bound", table(results))
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
