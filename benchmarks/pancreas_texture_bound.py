"""How much of pancreas_progression's texture the CT shows: its pixel oracle per seed and split.

The demo plants progression on the lesion's CT texture amplitude ``h`` (HU sd ``6 + 28 h`` of a
correlated field, ``docs/demo.md``). ``value`` of ``oracle.json`` scores the rows with ``h``
known. A model only sees the converted CT: 4.4 mm voxels, a lesion of radius 8-15 mm at baseline
(2-3.5 voxels; its core, the mask eroded by one voxel, holds 3-60 voxels), and scanner noise of
10 / 15 / 20 HU with a PSF of 0.6 / 1.2 / 1.8 mm at sites a / b / c (c is the external test
site). ``value_pixels`` scores the rows with the posterior of ``h`` given the lesion-core voxels
of every time point up to the row's (the three phases share the texture, not the noise), by the
same Gaussian-field likelihood as nsclc_mmdls's histology oracle
(:func:`oncoflow.demo._oracle.texture_log_likelihood`): it is what an observer who knows the
mechanism can read from those voxels. It is a lower bound of what the whole image allows (the
rim voxels and the lesion mean, which moves by ``-10 h`` HU, are left out).

This script regenerates each seed's cohort from the mechanism (no model, no pipeline run) and
reports, on internal_test, external_test and both, the AUC of the true probability
(``value_latent``), of the score with ``h`` known (``value``), of the pixel posterior
(``value_pixels``) and of the tables alone (``value_tabular``); with ``--runs``, the AUC of
``cnn_lstm``'s fold ensemble in a finished run of the seed (``confirm.py --keep DIR``) on the same
rows. The README block shows beside them the headline model's test AUC of
``benchmarks/confirm_<seed>.json``.

Writes ``benchmarks/pancreas_texture_bound.json`` and the README block ``pancreas_texture``.

Usage:
    python benchmarks/pancreas_texture_bound.py --seeds 20261123 5 7 [--patients 200]
        [--runs 20261123=DIR 5=DIR 7=DIR]
    python benchmarks/pancreas_texture_bound.py --render-only
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

from readme_block import replace_block  # noqa: E402

from oncoflow.demo.pancreas_progression import (  # noqa: E402
    PancreasProgression,
    observable_probability,
    progression_probability,
)
from oncoflow.metrics.classification import safe_auc  # noqa: E402

OUT = HERE / "pancreas_texture_bound.json"
SPLITS = ("internal_test", "external_test", "test")
SCORES = ("value_latent", "value", "value_pixels", "value_tabular")


def seed_rows(seed: int, patients: int) -> pd.DataFrame:
    """One row per labelled test (patient, time point): split, label and the four scores."""
    gen = PancreasProgression(seed, patients)
    pats = gen.patients()
    tables = gen.tables(pats)
    with tempfile.TemporaryDirectory() as tmp:
        rendered = {p.patient_id: gen.render(p, gen.image_specs(p), Path(tmp)) for p in pats}
    latent = {p.patient_id: p.latent for p in pats}
    splits = tables.splits.set_index("patient_id")["split"]
    rows = tables.outcomes.dropna(subset=["progression_next"]).copy()
    rows["split"] = rows["patient_id"].map(splits)
    rows = rows[rows["split"] != "train"]
    pairs = list(zip(rows["patient_id"], rows["timepoint"], strict=True))
    rows["value_latent"] = [progression_probability(latent[p]) for p, _ in pairs]
    rows["value"] = [observable_probability(latent[p], int(t)) for p, t in pairs]
    rows["value_pixels"] = [rendered[p][f"p_pixels_{t}"] for p, t in pairs]
    rows["value_tabular"] = [
        observable_probability(latent[p], int(t), texture_known=False) for p, t in pairs
    ]
    return rows


def headline_test(seed: int) -> dict[str, Any] | None:
    """The headline model and its test AUC in ``confirm_<seed>.json``, if that file exists."""
    path = HERE / f"confirm_{seed}.json"
    if not path.exists():
        return None
    for row in json.loads(path.read_text())["rows"]:
        if row["study"] == "pancreas_progression":
            return {"model": row["headline"]["label"], "test": row["headline"]["test"]["value"]}
    return None


def model_scores(run: Path) -> pd.DataFrame:
    """The fold ensemble's test scores of ``cnn_lstm`` in a finished run of this seed."""
    path = run / "results" / "pancreas_progression" / "train" / "cnn_lstm" / "predictions.csv"
    frame = pd.read_csv(path)
    frame = frame[frame["fold"].astype(str) == "final"]
    return frame[["patient_id", "timepoint", "y_score"]].rename(columns={"y_score": "cnn_lstm"})


def measure(seed: int, patients: int, run: Path | None = None) -> dict[str, Any]:
    """The four oracle AUCs per test split of one seed (and ``cnn_lstm``'s, given its run)."""
    rows = seed_rows(seed, patients)
    scores = list(SCORES)
    if run is not None:
        rows = rows.merge(model_scores(run), on=["patient_id", "timepoint"], how="left")
        if rows["cnn_lstm"].isna().any():
            msg = f"{run}: cnn_lstm has no test score for some rows of seed {seed}"
            raise SystemExit(msg)
        scores.append("cnn_lstm")
    result: dict[str, Any] = {"seed": seed, "patients": patients}
    for split in SPLITS:
        part = rows if split == "test" else rows[rows["split"] == split]
        y = part["progression_next"].astype(int).to_numpy()
        result[split] = {"rows": len(part)} | {
            score: round(safe_auc(y, part[score].to_numpy()), 4) for score in scores
        }
    return result


def table(results: list[dict[str, Any]]) -> str:
    """The README block: one row per seed and split, the headline model on the pooled rows."""
    lines = [
        "| seed | test rows | latent | `value` (h known) | `value_pixels` (core voxels) "
        "| `value_tabular` | `cnn_lstm` of the run | headline model (confirm JSON) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        headline = headline_test(r["seed"])
        for split in SPLITS:
            s = r[split]
            cells = [f"{r['seed']}", f"{split} ({s['rows']})"]
            cells += [f"{s[k]:.3f}" for k in SCORES]
            cells.append(f"{s['cnn_lstm']:.3f}" if "cnn_lstm" in s else "")
            top = split == "test" and headline
            cells.append(f"{headline['model']}: {headline['test']:.3f}" if top else "")
            lines.append("| " + " | ".join(cells) + " |")
    seeds = " ".join(str(r["seed"]) for r in results)
    command = f"python benchmarks/pancreas_texture_bound.py --seeds {seeds} --runs SEED=DIR ..."
    source = "[benchmarks/pancreas_texture_bound.json](benchmarks/pancreas_texture_bound.json)"
    return (
        f"Rendered by `{command}` from {source}; the headline model's test AUC from"
        " `benchmarks/confirm_<seed>.json`.\n\n" + "\n".join(lines)
    )


def main(argv: list[str] | None = None) -> int:
    """Measure the seeds (or re-render the README block from the JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[20261123, 5, 7])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument(
        "--runs",
        nargs="*",
        default=[],
        metavar="SEED=DIR",
        help="a finished run of a seed (confirm.py --keep DIR): its cnn_lstm per test split",
    )
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args(argv)
    if args.render_only:
        results = json.loads(OUT.read_text())["seeds"]
    else:
        results = []
        runs = {int(k): Path(v) for k, v in (item.split("=", 1) for item in args.runs)}
        for seed in args.seeds:
            results.append(measure(seed, args.patients, runs.get(seed)))
            print(json.dumps(results[-1]), flush=True)
        OUT.write_text(json.dumps({"seeds": results}, indent=2) + "\n")
    if not replace_block(REPO / "README.md", "pancreas_texture", table(results)):
        print("README.md has no pancreas_texture block", file=sys.stderr)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
