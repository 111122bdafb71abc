"""How much of liver_response's necrosis change the MR images show, read two ways.

liver_response's ``value`` knows the change of necrotic fraction ``n1 - n0``, which only the MR
signal carries (docs/demo.md): necrosis is bright on T2 and dark on T1 / T1V. A model reads it
from the lesion's intensity before and after treatment, and each image also carries the
scanner's gain and a smooth multiplicative bias field (about 12 % SD; a coil's inhomogeneity),
drawn anew for every sequence and time point. This script asks, on the generating mechanism
alone (no network, no pipeline run; fresh seeds, the raw grid, the given masks), how well the
lesion-core mean of each sequence at both time points tells that change:

- ``percentile``: the mean of the image scaled by its 0.5 / 99.5 percentiles, as the lesion
  crops are (:func:`oncoflow.lesions.crops.normalise`; what ``lesion_means`` reads);
- ``ring``: the log ratio of the mean to the median of a ring of the tissue around the lesion
  (:func:`oncoflow.deep.data.ring_mask`; what ``lesion_reference`` reads), which lies under the
  same gain and bias;

each over the lesion's core (the mask eroded in plane by one voxel, 4.6 mm; the pipeline's crops
erode 2 crop pixels, about half a voxel) and over the whole mask. The ring lies 1-3 voxels
outside the mask. For each readout: the R² of the visible necrosis change from its six values (a
linear fit on the first half of the patients, scored on the second), and the AUC on the second
half of the logistic model of the tabular posterior's logit and the six values, fit on the first
half.
Beside them ``value`` and ``value_tabular`` of the same patients. The gap between ``value`` and
a readout's AUC is what the images do not show at the demo's resolution and noise, whatever the
model; nothing is chosen here.

Usage:
    python benchmarks/liver_necrosis_readout.py --seeds 9001 [--patients 2000]
    python benchmarks/liver_necrosis_readout.py --render-only
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

from readme_block import replace_block  # noqa: E402

from oncoflow.deep.data import core_mask, ring_mask  # noqa: E402
from oncoflow.demo import liver_response as lr  # noqa: E402
from oncoflow.lesions.crops import normalise  # noqa: E402
from oncoflow.metrics.classification import safe_auc  # noqa: E402

OUT = HERE / "liver_necrosis_readout.json"
RING = (1, 3)
"""The ring of surrounding tissue on the raw grid: 1 to 3 voxels outside the lesion, in plane."""
READOUTS = ("core_percentile", "core_ring", "mask_percentile", "mask_ring")
"""Region (the eroded core or the whole mask) and scale of each readout."""


def readouts(gen: lr.LiverResponse, patient: Any) -> dict[str, list[float]]:
    """Each readout's six values ``[T1 pre, T1 post, T2 pre, ...]`` of one patient."""
    rng = gen.rng(patient.index, "pixels")  # the render's stream: the images the cohort holds
    values: dict[tuple[str, int], dict[str, float]] = {}
    for tp in (0, 1):
        _, scene, mask = lr.timepoint_scene(patient.latent, patient.site, tp, rng)
        lesion = mask.astype(bool)
        regions = {"core": core_mask(lesion, 1, 10, in_plane=True), "mask": lesion}
        ring = ring_mask(lesion, *RING)
        for seq in lr.SEQUENCES:
            image = lr.mr_image(scene, seq, patient.site, rng, patient.latent["texture"])
            image = image.astype(np.float64)
            scaled = normalise(image, "MR", None)
            reference = max(float(np.median(image[ring])), 1e-6)
            values[seq, tp] = {}
            for region, inside in regions.items():
                values[seq, tp][f"{region}_percentile"] = float(scaled[inside].mean())
                values[seq, tp][f"{region}_ring"] = float(np.log(image[inside].mean() / reference))
    return {
        name: [values[seq, tp][name] for seq in lr.SEQUENCES for tp in (0, 1)] for name in READOUTS
    }


def measure(seed: int, patients: int) -> dict[str, Any]:
    """Render ``patients`` of a fresh cohort, fit on the first half, score the second."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    gen = lr.LiverResponse(seed, patients)
    pats = gen.patients()
    tables = gen.tables(pats)
    y = tables.outcomes["response"].to_numpy(int)
    rows = [readouts(gen, p) for p in pats]
    latents = [p.latent for p in pats]
    visible = np.array([v["n1"] - v["n0"] for v in latents])
    blind = np.array([lr.response_probability(v, necrosis_known=False) for v in latents])
    value = np.array([lr.response_probability(v) for v in latents])
    fit = np.arange(patients) < patients // 2
    held = ~fit
    out: dict[str, Any] = {
        "seed": seed,
        "patients": patients,
        "scored": int(held.sum()),
        "value": round(float(safe_auc(y[held], value[held])), 4),
        "value_tabular": round(float(safe_auc(y[held], blind[held])), 4),
    }
    for name in READOUTS:
        x = np.array([r[name] for r in rows])
        r2 = LinearRegression().fit(x[fit], visible[fit]).score(x[held], visible[held])
        design = np.column_stack([np.log(blind / (1 - blind)), x])
        design = (design - design[fit].mean(0)) / design[fit].std(0)
        model = LogisticRegression(C=1e4, max_iter=5000).fit(design[fit], y[fit])
        auc = safe_auc(y[held], model.predict_proba(design[held])[:, 1])
        out[name] = {"r2_necrosis_change": round(float(r2), 3), "auc": round(float(auc), 4)}
    return out


def table(result: dict[str, Any]) -> str:
    """The README block: one row per seed."""
    seeds = " ".join(str(r["seed"]) for r in result["runs"])
    lines = [
        "What the MR images show of liver_response's necrosis change, on fresh seeds "
        f"(`python benchmarks/liver_necrosis_readout.py --seeds {seeds} --patients "
        f"{result['patients']}`, `benchmarks/liver_necrosis_readout.json`; no model; half the "
        "patients fit, half scored):",
        "",
        "| seed | patients scored | `value_tabular` | tabular + the means of each sequence "
        "before and after: core, percentile-scaled | core, ring-referenced | whole mask, "
        "percentile-scaled | whole mask, ring-referenced | `value` |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        cells = " | ".join(
            f"R² {r[name]['r2_necrosis_change']:.2f}, AUC {r[name]['auc']:.3f}" for name in READOUTS
        )
        lines.append(
            f"| {r['seed']} | {r['scored']} | {r['value_tabular']:.3f} | {cells} "
            f"| {r['value']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure the seeds (or render the JSON), write the JSON and the README block."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[9001])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--render-only", action="store_true", help="README block from the JSON")
    args = parser.parse_args(argv)
    if args.render_only:
        result = json.loads(OUT.read_text())
    else:
        runs = [measure(seed, args.patients) for seed in args.seeds]
        result = {"patients": args.patients, "ring_voxels": list(RING), "runs": runs}
        OUT.write_text(json.dumps(result, indent=1) + "\n")
    replace_block(REPO / "README.md", "liver_necrosis_readout", table(result))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
