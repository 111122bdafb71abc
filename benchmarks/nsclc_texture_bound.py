"""How much of the nsclc_mmdls histology signal survives imaging: an observable bound.

The demo plants histology on the lesion's CT texture amplitude ``h`` (HU sd ``8 + 50 h`` of a
correlated field with a ~1-voxel correlation length; ``docs/demo.md``) and its oracle AUC uses
the true ``h``. A model only sees the converted CT: ~5 mm voxels, a lesion of radius 6-28 mm
(1-6 voxels), the partial-volume rim, and scanner noise of 10 / 15 / 20 HU at sites a / b / c.

For every patient of a finished demo run this script measures, inside the lesion core (the mask
eroded by one voxel), the spread statistics a model can compute (IQR, p90 - p10, a noise-corrected
sd ``sqrt(sd_r^2 - sigma_n^2)`` with ``sd_r = IQR / 1.349`` and the noise ``sigma_n`` from the
median absolute deviation of the eroded lung), and compares them with the generator's latent
``h`` (regenerated from the seed):

* per site: the correlation of each statistic with ``h``;
* the **observable bound**: per site, the least-squares estimate ``h_hat`` of ``h`` from
  ``[1, log IQR, log(p90 - p10), log(n_core + 1)]`` fitted on *all* that site's patients (in-sample,
  using the latent: an optimistic bound for any model of these statistics), then the AUC of
  ``P(LUSC | h_hat, smoking)`` (the generator's own formula) on the test splits, next to the
  oracle AUC of ``P(LUSC | h, smoking)``.

Writes ``benchmarks/nsclc_texture_bound.json``.

Usage:
    python benchmarks/nsclc_texture_bound.py --workdir RUN [--seed 20261123] [--patients 200]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage
from sklearn.metrics import roc_auc_score

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from oncoflow.deep.data import lesion_core_statistics  # noqa: E402
from oncoflow.demo.nsclc_mmdls import NsclcMmdls, lusc_probability  # noqa: E402


def core_statistics(ct: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Spread of the lesion core and the scanner noise measured in the lung.

    The core statistics are the ones ``mm_dls`` reads
    (:func:`oncoflow.deep.data.lesion_core_statistics`: label 2 eroded once, the whole lesion
    when fewer than 8 core voxels remain).

    Returns:
        ``iqr`` and ``spread`` (p90 - p10) of the core (HU), ``n_core`` (voxels after erosion),
        ``noise`` (HU, ``1.4826 * MAD`` of the lung, label 1 eroded twice) and ``corrected``
        (HU, ``sqrt(max((IQR / 1.349)^2 - noise^2, 1))``).
    """
    lesion = mask == 2
    stats = lesion_core_statistics(ct, lesion, min_voxels=8)
    lung = ct[ndimage.binary_erosion(mask == 1, iterations=2)]
    noise = 1.4826 * float(np.median(np.abs(lung - np.median(lung))))
    robust = stats["iqr"] / 1.349
    return {
        "iqr": stats["iqr"],
        "spread": stats["spread"],
        "n_core": int(ndimage.binary_erosion(lesion).sum()),
        "noise": noise,
        "corrected": float(np.sqrt(max(robust**2 - noise**2, 1.0))),
    }


def measure(workdir: Path, seed: int, n_patients: int) -> dict[str, object]:
    """The per-site correlations and the observable bound (module docstring)."""
    latents = {p.patient_id: p for p in NsclcMmdls(seed, n_patients).patients()}
    splits = pd.read_csv(workdir / "results/nsclc_mmdls/splits.csv", dtype={"patient_id": str})
    rows = []
    for patient, split in zip(splits["patient_id"], splits["split"], strict=True):
        folder = workdir / "results/converted" / patient / "0"
        ct = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "CT.nii.gz"))).astype(float)
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "CT_mask.nii.gz")))
        truth = latents[patient]
        rows.append(
            {
                "patient_id": patient,
                "split": split,
                "site": truth.site,
                "h": truth.latent["texture"],
                "p_true": lusc_probability(truth.latent),
                **core_statistics(ct, mask),
            }
        )
    frame = pd.DataFrame(rows)
    outcomes = pd.read_csv(workdir / "resources/demo/nsclc_mmdls/outcomes.csv")
    lusc = dict(zip(outcomes["patient_id"], outcomes["histology"] == "LUSC", strict=True))
    frame["y"] = frame["patient_id"].map(lusc).astype(int)
    design = np.column_stack(
        [
            np.ones(len(frame)),
            np.log(frame["iqr"].clip(lower=1.0)),
            np.log(frame["spread"].clip(lower=1.0)),
            np.log(frame["n_core"] + 1.0),
        ]
    )
    frame["h_hat"] = np.nan
    per_site = {}
    for site, part in frame.groupby("site"):
        beta = np.linalg.lstsq(design[part.index], part["h"], rcond=None)[0]
        frame.loc[part.index, "h_hat"] = design[part.index] @ beta
        per_site[site] = {
            "n": len(part),
            "noise_hu_measured": round(float(part["noise"].mean()), 2),
            "share_core_under_8_voxels": round(float((part["n_core"] < 8).mean()), 3),
            "corr_h_log_iqr": round(float(np.corrcoef(part["h"], np.log(part["iqr"]))[0, 1]), 3),
            "corr_h_log_spread": round(
                float(np.corrcoef(part["h"], np.log(part["spread"].clip(lower=1.0)))[0, 1]), 3
            ),
            "corr_h_log_corrected": round(
                float(np.corrcoef(part["h"], np.log(part["corrected"]))[0, 1]), 3
            ),
            "corr_h_h_hat": round(
                float(np.corrcoef(part["h"], frame.loc[part.index, "h_hat"])[0, 1]), 3
            ),
        }
    frame["p_hat"] = [
        lusc_probability({**latents[p].latent, "texture": float(np.clip(h, 0.0, 1.0))})
        for p, h in zip(frame["patient_id"], frame["h_hat"], strict=True)
    ]
    test = frame[frame["split"] != "train"]
    auc = {}
    for name, part in [("test", test), *test.groupby("split")]:
        auc[str(name)] = {
            "oracle": round(float(roc_auc_score(part["y"], part["p_true"])), 3),
            "observable_bound": round(float(roc_auc_score(part["y"], part["p_hat"])), 3),
            "n": len(part),
        }
    return {"sites": per_site, "auc": auc}


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and write the JSON (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="a finished demo run")
    parser.add_argument("--seed", type=int, default=20261123, help="the demo cohort's seed")
    parser.add_argument("--patients", type=int, default=200, help="the demo's nsclc patients")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/nsclc_texture_bound.json")
    args = parser.parse_args(argv)
    result = {
        "workdir": str(args.workdir),
        "seed": args.seed,
        "patients": args.patients,
        **measure(args.workdir, args.seed, args.patients),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["auc"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
