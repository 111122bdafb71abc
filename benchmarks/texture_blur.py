"""How much of the lesion's texture each site's scanner keeps, and whether a case's edges tell.

pancreas_multitask's refit head reads the lesion's texture as the organ-referenced robust SD
``sqrt(max(sd^2 - sd_pancreas^2, 0))`` of the CT in the lesion core
(:mod:`oncoflow.segmentation.lesion_statistics`): the scanner's noise is taken out, its PSF is
not. The planted texture is ``(6 + 28 h)`` HU times a unit-variance field of 0.9 voxel width
(docs/demo.md); a Gaussian PSF of 0.6 / 1.2 / 1.8 mm (site_a / site_b / the external site_c)
smooths part of it away, so a head fitted at the training sites reads the external site's
lesions as smoother than they are, and its class boundaries on the texture move.

This script measures it on the generating mechanism alone (no network, no pipeline run; the
given masks, the raw grid): for fresh development seeds it renders every patient of the study
and reports per site

- ``retention``: the organ-referenced SD over the planted texture SD ``gain * (6 + 28 h)``
  (1 = the scanner keeps the texture; median and IQR over the site's patients);
- the organ-referenced SD per subtype (what the head's boundaries are drawn on);
- ``edge_sigma_mm``: the width of the pancreas's edge, the SD of an error function fitted to
  the mean HU of shells of equal signed distance (mm) to the given pancreas surface, +-8 mm: the
  per-case estimate of the PSF a blur-aware correction would divide by.

A correction is worth building when ``edge_sigma_mm`` separates the sites case by case and its
error is small against the retention it must undo; this script only measures, it adopts nothing.

Usage:
    python benchmarks/texture_blur.py --seeds 101 102 [--patients 120]
    python benchmarks/texture_blur.py --render-only
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

from readme_block import replace_block  # noqa: E402

from oncoflow.demo._base import ImageSpec  # noqa: E402
from oncoflow.demo._common import SCANNERS  # noqa: E402
from oncoflow.demo.pancreas_multitask import PancreasMultitask  # noqa: E402
from oncoflow.segmentation.lesion_statistics import lesion_statistics  # noqa: E402

OUT = HERE / "texture_blur.json"
BAND_MM = 8.0
"""Half-width of the band of shells around the pancreas surface the edge is fitted on (mm)."""


def edge_sigma(image: np.ndarray, organ: np.ndarray, spacing: np.ndarray) -> float:
    """SD (mm) of the error function fitted to the mean HU per signed distance to the surface.

    ``HU(d) = a + c * Phi(-(d - delta) / sigma)``, ``d`` the signed distance (mm, negative
    inside) of each voxel centre within :data:`BAND_MM` of the surface, the shells' means
    weighted by their voxel counts. NaN when the fit fails.
    """
    from scipy import ndimage, optimize, special

    inside = ndimage.distance_transform_edt(organ, sampling=spacing)
    outside = ndimage.distance_transform_edt(~organ, sampling=spacing)
    d = np.where(organ, -inside, outside)
    band = np.abs(d) <= BAND_MM
    shells, index = np.unique(np.round(d[band], 2), return_inverse=True)
    counts = np.bincount(index)
    means = np.bincount(index, image[band].astype(float)) / counts

    def model(x: np.ndarray, a: float, c: float, delta: float, sigma: float) -> np.ndarray:
        return a + c * 0.5 * special.erfc((x - delta) / (np.sqrt(2.0) * sigma))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optimize.OptimizeWarning)  # no covariance: not needed
        try:
            p, _ = optimize.curve_fit(
                model, shells, means, p0=[means[-1], means[0] - means[-1], 0.0, 1.0],
                sigma=1.0 / np.sqrt(counts), maxfev=5000,
            )  # fmt: skip
        except RuntimeError:
            return float("nan")
    return float(abs(p[3]))


def measure(seed: int, patients: int) -> list[dict[str, Any]]:
    """One row per patient: site, subtype, planted and read texture SD (HU), edge width (mm)."""
    gen = PancreasMultitask(seed, patients)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for p in gen.patients():
            spec = ImageSpec(
                0, "CT", "venous", f"{p.patient_id}.nii.gz", f"{p.patient_id}_m.nii.gz"
            )
            gen.render(p, [spec], Path(tmp))
            img = sitk.ReadImage(str(Path(tmp) / spec.path))
            image = sitk.GetArrayFromImage(img).astype(float)
            mask = sitk.GetArrayFromImage(sitk.ReadImage(str(Path(tmp) / str(spec.mask_path))))
            spacing = np.array(img.GetSpacing()[::-1])
            read = lesion_statistics(image[None], mask, spacing, label=2, reference=1)[1]
            planted = SCANNERS[p.site].ct_gain * (6.0 + 28.0 * p.latent["texture"])
            edge = edge_sigma(image, mask > 0, spacing)
            rows.append({"seed": seed, "site": p.site, "subtype": int(p.latent["subtype"]),
                         "planted_sd": round(planted, 2), "read_sd": round(float(read), 2),
                         "edge_sigma_mm": round(edge, 3)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


def quartiles(values: np.ndarray) -> dict[str, float]:
    """Median and interquartile range, rounded."""
    q = np.nanpercentile(values, [25, 50, 75])
    return {
        "q25": round(float(q[0]), 3),
        "median": round(float(q[1]), 3),
        "q75": round(float(q[2]), 3),
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per site: retention, read SD per subtype, edge width (see the module docstring)."""
    out: dict[str, Any] = {}
    for site in sorted({r["site"] for r in rows}):
        part = [r for r in rows if r["site"] == site]
        read = np.array([r["read_sd"] for r in part])
        planted = np.array([r["planted_sd"] for r in part])
        edge = np.array([r["edge_sigma_mm"] for r in part])
        out[site] = {
            "patients": len(part),
            "psf_mm": SCANNERS[site].blur_mm,
            "retention": quartiles(read / planted),
            "read_sd_by_subtype": [
                round(float(np.mean([r["read_sd"] for r in part if r["subtype"] == k])), 2)
                if any(r["subtype"] == k for r in part)
                else None
                for k in range(3)
            ],
            "edge_sigma_mm": {**quartiles(edge), "sd": round(float(np.nanstd(edge)), 3)},
        }
    return out


def table(result: dict[str, Any]) -> str:
    """The README block: one row per site."""
    seeds = " ".join(str(s) for s in result["seeds"])
    lines = [
        "What each scanner keeps of the lesion's texture, on the given masks of fresh seeds "
        f"(`python benchmarks/texture_blur.py --seeds {seeds}`, `benchmarks/texture_blur.json`; "
        "no model):",
        "",
        "| site | PSF (mm) | patients | retention, median [IQR] | organ-referenced SD by "
        "subtype 0 / 1 / 2 (HU) | edge width, median [IQR] (mm) |",
        "|---|---|---|---|---|---|",
    ]
    for site, s in result["sites"].items():
        r, e = s["retention"], s["edge_sigma_mm"]
        by = " / ".join("-" if v is None else f"{v:.1f}" for v in s["read_sd_by_subtype"])
        lines.append(
            f"| {site} | {s['psf_mm']:.1f} | {s['patients']} "
            f"| {r['median']:.2f} [{r['q25']:.2f}, {r['q75']:.2f}] | {by} "
            f"| {e['median']:.2f} [{e['q25']:.2f}, {e['q75']:.2f}] |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure the seeds (or render the JSON), write the JSON and the README block."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[101, 102])
    parser.add_argument("--patients", type=int, default=120, help="science-scale cohort size")
    parser.add_argument("--render-only", action="store_true", help="README block from the JSON")
    args = parser.parse_args(argv)
    if args.render_only:
        result = json.loads(OUT.read_text())
    else:
        rows = [row for seed in args.seeds for row in measure(seed, args.patients)]
        result = {"seeds": args.seeds, "patients": args.patients, "sites": summary(rows),
                  "rows": rows}  # fmt: skip
        OUT.write_text(json.dumps(result, indent=1) + "\n")
    replace_block(REPO / "README.md", "texture_blur", table(result))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
