"""Where a study's tabular baseline can land: its ceiling and its spread at the demo's size.

``value_tabular`` of ``oracle.json`` scores the best a model of the baseline's inputs can do when
the lesion volumes are known exactly (the generator's radii). The pipeline's
``baseline_clinical_size`` reads the volumes off the lesion masks and is fitted on the training
patients of a demo cohort, with clinical columns of which some carry nothing. Issue 23 asks it
to land within 0.05 of ``value_tabular`` on the test rows. This script asks, from the generating
mechanism alone (no image is rendered, no pipeline run), how far a correct baseline lands:

1. **design**: on one large cohort (half the patients fit, half scored), the baseline's own model
   (:class:`~oncoflow.features.tabular.TabularEncoder`, :func:`~oncoflow.baselines.fit.
   fit_classifier`, the inputs of :func:`~oncoflow.baselines.design.design_table`) with the
   exact volumes: it should reach ``value_tabular`` if its inputs can express the oracle;
2. **masks**: the same with the volumes counted on each time point's label map (the generator's
   own ``timepoint_scene``: its grid and lesion); the log-volume change between time points then
   carries a measurement error, reported beside its own SD;
3. **demo size**: for fresh cohorts of the science-scale size, the baseline fitted on the
   training split (once, on all training patients; the pipeline averages its fold models) and
   scored on the test rows, against the ``value_tabular`` of those rows: the distribution of the
   gap over cohorts, i.e. how far a correct baseline lands by chance.

The same fit (part 3) is also run on the confirmation seeds (``--confirm-seeds``), whose test
figures are public in the README, and set beside the pipeline's own baseline of
``benchmarks/confirm_<seed>.json``: it tells a hard draw of the test split from a weaker fit.
Nothing is chosen here. Studies: ``pancreas_progression`` (one row per patient and time point,
the lesion is label 2) and ``liver_response`` (one row per patient, the lesion is label 1).

Usage:
    python benchmarks/baseline_spread.py --study pancreas_progression [--large 3000]
        [--seeds 1001 ...] [--patients 200] [--confirm-seeds 20261123 5 7]
    python benchmarks/baseline_spread.py --study liver_response --patients 400 ...
    python benchmarks/baseline_spread.py --study S --render-only
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

from readme_block import replace_block  # noqa: E402

from oncoflow.baselines.design import design_table  # noqa: E402
from oncoflow.baselines.fit import fit_classifier  # noqa: E402
from oncoflow.demo import liver_response, pancreas_progression  # noqa: E402
from oncoflow.demo._phantoms import LESION, NECROSIS  # noqa: E402
from oncoflow.features.tabular import TabularEncoder  # noqa: E402
from oncoflow.metrics.classification import safe_auc  # noqa: E402


@dataclass(frozen=True)
class Study:
    """What the script needs of a study: its generator, target, baseline inputs and sizes.

    Attributes:
        name: The study.
        generator: Its demo generator class.
        target: The binary target.
        clinical: Its clinical columns (config.yaml).
        label: The lesion's label in the masks (the size column ``size_label<l>_ml``).
        by_timepoint: One row per patient and time point (else one per patient).
        patients: The science-scale cohort size (config/demo-full.yaml).
    """

    name: str
    generator: type
    target: str
    clinical: tuple[str, ...]
    label: int
    by_timepoint: bool
    patients: int


STUDIES = {
    "pancreas_progression": Study(
        "pancreas_progression", pancreas_progression.PancreasProgression, "progression_next",
        ("age", "sex", "ca19_9", "ldh", "alb", "crp"), 2, True, 200,
    ),
    "liver_response": Study(
        "liver_response", liver_response.LiverResponse, "response",
        ("afp_pre", "afp_post", "dcp_pre", "dcp_post"), 1, False, 400,
    ),
}  # fmt: skip


def lesion_volumes(study: Study, gen: Any, patients: list) -> pd.DataFrame:
    """Per patient and time point: the lesion volume counted on its label map and the exact one.

    Exact: the ellipsoid of the generator's volume-equivalent radius, ``4/3 pi r^3`` (mL).
    """
    rows = []
    for p in patients:
        rng = gen.rng(p.index, "pixels")
        for tp, radius in enumerate(_radii(study, p.latent)):
            if study.name == "pancreas_progression":
                grid, scene, _ = pancreas_progression.timepoint_scene(
                    p.latent, p.site, float(radius), rng
                )
            else:
                grid, scene, _ = liver_response.timepoint_scene(p.latent, p.site, tp, rng)
            voxel_ml = float(np.prod(grid.spacing)) / 1000.0
            lesion = np.isin(scene.tissue, (LESION, NECROSIS))
            rows.append({"patient_id": p.patient_id, "timepoint": tp,
                         "masks": np.count_nonzero(lesion) * voxel_ml,
                         "exact": 4.0 / 3.0 * np.pi * radius**3 / 1000.0})  # fmt: skip
    return pd.DataFrame(rows)


def _radii(study: Study, latent: dict[str, Any]) -> np.ndarray:
    """The lesion's volume-equivalent radius (mm) per time point, as the generator draws it."""
    if study.name == "pancreas_progression":
        return pancreas_progression.lesion_radii(latent)
    post = latent["r0"] * np.exp(latent["delta"] / 3.0)
    return np.clip([latent["r0"], post], 4.0, 40.0)


def labelled_rows(study: Study, gen: Any, patients: list) -> tuple[pd.DataFrame, Any]:
    """The generator's labelled rows (patient [, time point], label, split, value_tabular score)."""
    tables = gen.tables(patients)
    rows = tables.outcomes.dropna(subset=[study.target]).copy()
    rows[study.target] = rows[study.target].astype(int)
    rows["split"] = rows["patient_id"].map(tables.splits.set_index("patient_id")["split"])
    latent = {p.patient_id: p.latent for p in patients}
    if study.by_timepoint:
        rows["tabular"] = [
            pancreas_progression.observable_probability(latent[i], int(t), texture_known=False)
            for i, t in zip(rows["patient_id"], rows["timepoint"], strict=True)
        ]
    else:
        rows["tabular"] = [
            liver_response.response_probability(latent[i], necrosis_known=False)
            for i in rows["patient_id"]
        ]
    return rows.reset_index(drop=True), tables


def baseline_scores(
    study: Study, tables: Any, volumes: pd.DataFrame, source: str, rows: pd.DataFrame, fit: Any
) -> np.ndarray:
    """Fit the baseline on rows ``fit`` (boolean), return its scores of every row."""
    size = f"size_label{study.label}_ml"
    sizes = volumes[["patient_id", "timepoint", source]].rename(columns={source: size})
    design = design_table(
        tables.clinical, list(study.clinical), sizes, by_timepoint=study.by_timepoint, keys=rows
    )
    if study.by_timepoint:
        design = design.loc[list(zip(rows["patient_id"], rows["timepoint"], strict=True))]
    else:
        design = design.loc[rows["patient_id"].astype(str).tolist()]
    encoder = TabularEncoder().fit(design[list(fit)])
    x = encoder.transform(design)
    y = rows[study.target].to_numpy(int)
    fitted = fit_classifier(x[fit], y[fit], rows.loc[fit, "patient_id"].tolist(), seed=0)
    return fitted.model.predict_proba(x)[:, 1]


def asymptote(study: Study, seed: int, patients: int) -> dict[str, Any]:
    """Part 1 and 2 of the module docstring on one large cohort."""
    gen = study.generator(seed, patients)
    pats = gen.patients()
    rows, tables = labelled_rows(study, gen, pats)
    volumes = lesion_volumes(study, gen, pats)
    index = {p.patient_id: i for i, p in enumerate(pats)}
    fit = rows["patient_id"].map(index).to_numpy() < patients // 2
    y, held = rows[study.target].to_numpy(int), ~fit
    out: dict[str, Any] = {"seed": seed, "patients": patients, "scored_rows": int(held.sum())}
    out["value_tabular"] = round(float(safe_auc(y[held], rows["tabular"].to_numpy()[held])), 4)
    for source in ("exact", "masks"):
        scores = baseline_scores(study, tables, volumes, source, rows, fit)
        out[f"baseline_{source}"] = round(float(safe_auc(y[held], scores[held])), 4)
    logs = np.log(volumes[["exact", "masks"]] + 0.1).groupby(volumes["patient_id"]).diff().dropna()
    out["interval_change_error_sd"] = round(float((logs["masks"] - logs["exact"]).std()), 3)
    out["interval_change_sd"] = round(float(logs["exact"].std()), 3)
    return out


def demo_size(study: Study, seed: int, patients: int) -> dict[str, Any]:
    """Part 3 of the module docstring on one cohort of the science-scale size."""
    gen = study.generator(seed, patients)
    pats = gen.patients()
    rows, tables = labelled_rows(study, gen, pats)
    fit = (rows["split"] == "train").to_numpy()
    volumes = lesion_volumes(study, gen, pats)
    scores = baseline_scores(study, tables, volumes, "masks", rows, fit)
    y, test = rows[study.target].to_numpy(int), ~fit
    oracle = tables.oracle[study.target]["value_tabular"]
    auc = float(safe_auc(y[test], scores[test]))
    return {"seed": seed, "test_rows": int(test.sum()), "value_tabular": oracle,
            "baseline": round(auc, 4), "gap": round(oracle - auc, 4)}  # fmt: skip


def pipeline_baseline(study: Study, seed: int) -> float | None:
    """Test AUC of the pipeline's baseline in ``benchmarks/confirm_<seed>.json`` (if any)."""
    path = HERE / f"confirm_{seed}.json"
    if not path.exists():
        return None
    rows = json.loads(path.read_text())["rows"]
    rows = [r for r in rows if r["study"] == study.name and r["target"] == study.target]
    return rows[0]["baseline"]["test"]["value"] if rows else None


def confirm_rows(study: Study, runs: list[dict[str, Any]]) -> list[str]:
    """Table rows of the confirmation seeds: value_tabular, this fit, the pipeline's baseline."""
    rows = "rows" if study.by_timepoint else "patients"
    lines = []
    for r in runs:
        own = pipeline_baseline(study, r["seed"])
        pipeline = "" if own is None else f" / {own:.3f}"
        lines.append(
            f"| confirmation seed {r['seed']} ({r['test_rows']} test {rows}): `value_tabular` / "
            f"this fit{' / the pipeline baseline (confirm JSON)' if own is not None else ''} "
            f"| {r['value_tabular']:.3f} / {r['baseline']:.3f}{pipeline} |"
        )
    return lines


def out_path(study: Study) -> Path:
    """``benchmarks/baseline_spread_<study>.json``."""
    return HERE / f"baseline_spread_{study.name}.json"


def table(study: Study, result: dict[str, Any]) -> str:
    """The README block of one study."""
    a, runs = result["asymptote"], result["demo_size"]
    gaps = np.array([r["gap"] for r in runs])
    seeds = " ".join(str(r["seed"]) for r in runs)
    confirm = result.get("confirm", [])
    extra = " --confirm-seeds " + " ".join(str(r["seed"]) for r in confirm) if confirm else ""
    rows = "rows" if study.by_timepoint else "patients"
    return "\n".join([
        f"{study.name}'s tabular baseline against `value_tabular`, from the generator alone "
        f"(`python benchmarks/baseline_spread.py --study {study.name} --large {a['patients']} "
        f"--seeds {seeds} --patients {result['patients']}{extra}`, "
        f"`benchmarks/{out_path(study).name}`):",
        "",
        "| question | figure |",
        "|---|---|",
        f"| large cohort ({a['patients']} patients, {a['scored_rows']} {rows} scored): "
        f"`value_tabular` / baseline, exact volumes / baseline, mask volumes (AUC) "
        f"| {a['value_tabular']:.3f} / {a['baseline_exact']:.3f} / {a['baseline_masks']:.3f} |",
        f"| SD of the log-volume change between time points / of its error on the masks "
        f"| {a['interval_change_sd']:.3f} / {a['interval_change_error_sd']:.3f} |",
        f"| {len(runs)} cohorts of {result['patients']} patients: gap `value_tabular` minus "
        f"baseline on the test {rows}, mean [min, max] "
        f"| {gaps.mean():.3f} [{gaps.min():.3f}, {gaps.max():.3f}] |",
        f"| share of those cohorts with the baseline within 0.05 of `value_tabular` "
        f"| {np.mean(gaps <= 0.05):.2f} |",
        *confirm_rows(study, confirm),
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Measure (or render the JSON), write the JSON and the README block."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", choices=sorted(STUDIES), required=True)
    parser.add_argument("--large", type=int, default=3000, help="patients of the large cohort")
    parser.add_argument("--large-seed", type=int, default=778)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1001, 1021)))
    parser.add_argument("--patients", type=int, help="cohort size (default: the science scale)")
    parser.add_argument("--confirm-seeds", type=int, nargs="*", default=[])
    parser.add_argument("--render-only", action="store_true", help="README block from the JSON")
    args = parser.parse_args(argv)
    study = STUDIES[args.study]
    patients = args.patients or study.patients
    if args.render_only:
        result = json.loads(out_path(study).read_text())
    else:
        result = {"study": study.name, "patients": patients,
                  "asymptote": asymptote(study, args.large_seed, args.large)}  # fmt: skip
        print(json.dumps(result["asymptote"]), flush=True)
        result["demo_size"] = []
        for seed in args.seeds:
            result["demo_size"].append(demo_size(study, seed, patients))
            print(json.dumps(result["demo_size"][-1]), flush=True)
        result["confirm"] = [demo_size(study, seed, patients) for seed in args.confirm_seeds]
        out_path(study).write_text(json.dumps(result, indent=1) + "\n")
    replace_block(REPO / "README.md", f"baseline_spread_{study.name}", table(study, result))
    print(table(study, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
