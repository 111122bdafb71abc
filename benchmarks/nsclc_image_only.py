"""What the image-only MM-DLS variant reads for histology: the lesion's size, and how it turns.

On the science-scale demo ``mm_dls_image`` (the slice encoders and no tabular column) scores
histology below chance on test. The demo plants histology on a texture about one voxel across
(docs/demo.md), which 32 px crops barely hold, and not on size: the tabular oracle of histology is
at chance. This script asks whether the image-only score is a size score whose sign was set by the
training patients' chance association of size with histology:

* per split (train, internal_test, external_test, and both tests pooled): the AUC of the reported
  tumour diameter for LUSC (the positive class, second in sorted order, as the models score it);
* for the fold ensemble's test scores and for each fold model (its validation and test rows):
  the AUC, the Spearman correlation of the score with the diameter and with the generator's
  texture latent ``h`` (regenerated from the seed; what the score should read), and the AUC of the
  score's residual after a least-squares line on log diameter (what is left once size is out).

Nothing is chosen from these figures; they describe a finished run (``confirm.py --keep DIR``).

Usage:
    python benchmarks/nsclc_image_only.py --workdir DIR

Writes ``benchmarks/nsclc_image_only_<seed>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

sys.path.insert(0, str(REPO / "benchmarks"))

from confirm import kept_seed  # noqa: E402

from oncoflow.demo.nsclc_mmdls import NsclcMmdls  # noqa: E402

STUDY = "nsclc_mmdls"
VARIANT = "mm_dls_image"


def _patients(workdir: Path, seed: int) -> pd.DataFrame:
    """One row per patient: split, LUSC indicator, reported diameter (mm), texture latent."""
    cohort = workdir / "resources" / "demo" / STUDY
    outcomes = pd.read_csv(cohort / "outcomes.csv")
    clinical = pd.read_csv(cohort / "clinical.csv")
    splits = pd.read_csv(workdir / "results" / STUDY / "splits.csv")
    table = outcomes.merge(clinical, on="patient_id").merge(splits, on="patient_id")
    positive = sorted(table["histology"].dropna().unique())[1]
    table["lusc"] = (table["histology"] == positive).astype(int)
    latents = {p.patient_id: p.latent for p in NsclcMmdls(seed, len(table)).patients()}
    table["texture"] = [latents[p]["texture"] for p in table["patient_id"]]
    return table.set_index("patient_id")[["split", "lusc", "tumour_diameter_mm", "texture"]]


def _scored(rows: pd.DataFrame, patients: pd.DataFrame) -> dict[str, float]:
    """AUC, Spearman with the diameter and size-residual AUC of one model's histology scores."""
    table = rows.set_index("patient_id")[["y_score"]].join(patients, how="inner")
    size = np.log(table["tumour_diameter_mm"].to_numpy(float))
    score = table["y_score"].to_numpy(float)
    slope, intercept = np.polyfit(size, score, 1)
    residual = score - (slope * size + intercept)
    return {
        "n": len(table),
        "auc": round(float(roc_auc_score(table["lusc"], score)), 4),
        "spearman_with_diameter": round(float(spearmanr(score, size)[0]), 4),
        "spearman_with_texture": round(float(spearmanr(score, table["texture"])[0]), 4),
        "auc_without_size": round(float(roc_auc_score(table["lusc"], residual)), 4),
    }


def measure(workdir: Path, seed: int) -> dict:
    """The figures of the module docstring for one kept run of demo seed ``seed``."""
    patients = _patients(workdir, seed)
    tests = ("internal_test", "external_test")
    size_auc = {}
    for name, part in [*patients.groupby("split"), ("test", patients[patients.split.isin(tests)])]:
        auc = roc_auc_score(part["lusc"], part["tumour_diameter_mm"])
        size_auc[str(name)] = {"n": len(part), "auc_of_diameter": round(float(auc), 4)}
    train = workdir / "results" / STUDY / "train" / VARIANT
    predictions = pd.read_csv(train / "predictions.csv")
    histology = predictions[predictions["target"] == "histology"]
    ensemble = _scored(histology[histology["fold"].astype(str) == "final"], patients)
    folds = {}
    for path in sorted(train.glob("fold_*/predictions.csv")):
        rows = pd.read_csv(path)
        rows = rows[rows["target"] == "histology"]
        folds[path.parent.name] = {
            split: _scored(rows[rows["split"].isin(names)], patients)
            for split, names in (("validation", ["validation"]), ("test", list(tests)))
        }
    return {"diameter": size_auc, "ensemble_test": ensemble, "folds": folds}


def main(argv: Sequence[str] | None = None) -> int:
    """Measure one kept run and write the JSON (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a run kept by confirm.py")
    parser.add_argument("--out-dir", type=Path, default=REPO / "benchmarks", help="output folder")
    args = parser.parse_args(argv)
    seed = kept_seed(args.workdir)
    result = {"seed": seed, "command": "python benchmarks/nsclc_image_only.py --workdir DIR"}
    result |= measure(args.workdir, seed)
    out = args.out_dir / f"nsclc_image_only_{seed}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("diameter", "ensemble_test")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
