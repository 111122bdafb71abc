"""How many liver_response demo patients does a test of "image model beats tabular baseline" need?

The acceptance of the evidence work asks each deep model to beat its tabular baseline on the test
patients (paired DeLong, p < 0.05) on three demo seeds. No model can do better than the
generator's own posteriors, so their paired test bounds the power of any model's: for demo seeds
``--seeds`` and cohort sizes ``--patients`` (half of each cohort is test), this computes from the
latents only (no image is rendered, no model runs) the AUC of the true ``P(response)`` (``value``
of ``oracle.json``) against the AUC of the tabular posterior that averages the necrosis change
over its prior (``value_tabular``), paired on the test patients, and reports the share of seeds
where that oracle difference reaches p < 0.05 and p < 0.01.

A model that reads part of the necrosis change from the images has less power than this; a cohort
where even the oracle misses p < 0.05 on some seeds cannot show a model beating its baseline on
three seeds. ``config/demo-full.yaml`` sizes the liver cohort from this table.

Writes ``benchmarks/demo_power.json``.

Usage:
    python benchmarks/demo_power.py [--patients 200 300 400] [--seeds 100 ... 139]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from oncoflow.demo.liver_response import LiverResponse, response_probability  # noqa: E402
from oncoflow.metrics.classification import delong_test  # noqa: E402


def oracle_test(seed: int, patients: int) -> dict:
    """The oracle against the tabular oracle on the test patients of one demo cohort."""
    generator = LiverResponse(seed, patients)
    cohort = generator.patients()
    tables = generator.tables(cohort)
    latents = [p.latent for p in cohort]
    seen = np.array([response_probability(v) for v in latents])
    blind = np.array([response_probability(v, necrosis_known=False) for v in latents])
    test = (tables.splits["split"] != "train").to_numpy()
    y = tables.outcomes["response"].to_numpy()[test]
    result = delong_test(y, seen[test], blind[test])
    return {
        "seed": seed,
        "test_patients": int(test.sum()),
        "responders": int(y.sum()),
        "value": round(result.auc_a, 4),
        "value_tabular": round(result.auc_b, 4),
        "p_value": float(result.p_value),
    }


def main(argv: list[str] | None = None) -> int:
    """Write benchmarks/demo_power.json; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[200, 300, 400])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(100, 140)))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "demo_power.json")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # the generator's split rebalancing notes
    sizes = []
    for n in args.patients:
        runs = [oracle_test(seed, n) for seed in args.seeds]
        p = np.array([r["p_value"] for r in runs])
        gap = np.array([r["value"] - r["value_tabular"] for r in runs])
        sizes.append(
            {
                "patients": n,
                "test_patients": runs[0]["test_patients"],
                "share_p_below_0.05": float(np.mean(p < 0.05)),
                "share_p_below_0.01": float(np.mean(p < 0.01)),
                "median_p": float(np.median(p)),
                "mean_value_minus_tabular": round(float(gap.mean()), 4),
                "seeds": runs,
            }
        )
        print(
            f"{n} patients ({runs[0]['test_patients']} test): oracle beats the tabular oracle at"
            f" p < 0.05 on {np.mean(p < 0.05):.0%} of {len(p)} seeds, p < 0.01 on"
            f" {np.mean(p < 0.01):.0%}; median p {np.median(p):.2g}"
        )
    command = "python benchmarks/demo_power.py " + " ".join(argv if argv is not None else [])
    result = {"study": "liver_response", "command": command.strip(), "sizes": sizes}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
