"""How many demo patients does a test of "image model beats tabular baseline" need?

The acceptance of the evidence work asks each deep model to beat its tabular baseline on the test
patients (paired, p < 0.05) on three demo seeds. No model can do better than the generator's own
posteriors, so their paired test bounds the power of any model's: for demo seeds ``--seeds`` and
cohort sizes ``--patients``, this computes from the latents only (no image is rendered, no model
runs) the oracle's score (``value`` of ``oracle.json``) against the tabular oracle's
(``value_tabular``), paired on the test patients, and reports per target the share of seeds where
that oracle difference reaches p < 0.05 and p < 0.01:

- ``liver_response``, ``response``: AUC of the true ``P(response)`` against the posterior that
  averages the necrosis change over its prior, paired DeLong;
- ``nsclc_mmdls``, ``dfs`` and ``os``: Harrell's C of the true risk ``eta`` against
  ``E[eta | clinical table, mask size]``, paired bootstrap (1,000 replicates, as the evaluation's
  comparisons).

A model that reads part of the image's signal has less power than this; a cohort where even the
oracle misses p < 0.05 on some seeds cannot show a model beating its baseline on three seeds.
``config/demo-full.yaml`` sizes the liver cohort from this table.

Writes ``benchmarks/demo_power.json`` (liver_response) or ``benchmarks/demo_power_<study>.json``.

Usage:
    python benchmarks/demo_power.py [--study liver_response] [--patients 200 300 400]
        [--seeds 100 ... 139]
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

from oncoflow.demo.liver_response import LiverResponse  # noqa: E402
from oncoflow.demo.nsclc_mmdls import NsclcMmdls  # noqa: E402
from oncoflow.evaluate.compare import paired_bootstrap  # noqa: E402
from oncoflow.metrics.classification import delong_test  # noqa: E402
from oncoflow.metrics.concordance import safe_concordance_index  # noqa: E402

GENERATORS = {"liver_response": LiverResponse, "nsclc_mmdls": NsclcMmdls}
"""Studies whose tables carry the oracles' per-patient scores (``StudyTables.scores``)."""


def oracle_test(study: str, seed: int, patients: int) -> list[dict]:
    """Per target: the oracle against the tabular oracle on the test patients of one cohort."""
    generator = GENERATORS[study](seed, patients)
    tables = generator.tables(generator.patients())
    test = (tables.splits["split"] != "train").to_numpy()
    rows = []
    for target, arrays in tables.scores.items():
        a, b = arrays["value"][test], arrays["value_tabular"][test]
        row = {"seed": seed, "target": target, "test_patients": int(test.sum())}
        if "y" in arrays:
            y = arrays["y"][test]
            result = delong_test(y, a, b)
            row |= {"positives": int(y.sum()), "value": round(result.auc_a, 4)}
            row |= {"value_tabular": round(result.auc_b, 4), "p_value": float(result.p_value)}
        else:
            time, event = arrays["time"][test], arrays["event"][test]
            paired = paired_bootstrap(safe_concordance_index, (time, event), a, b, seed=seed)
            row["events"] = int(event.sum())
            row["value"] = round(safe_concordance_index(time, event, a), 4)
            row["value_tabular"] = round(safe_concordance_index(time, event, b), 4)
            row["p_value"] = float(paired.p_value)
        rows.append(row)
    return rows


def summary(patients: int, target: str, runs: list[dict]) -> dict:
    """Share of seeds below p 0.05 / 0.01, median p and mean oracle gap of one size and target."""
    p = np.array([r["p_value"] for r in runs])
    gap = np.array([r["value"] - r["value_tabular"] for r in runs])
    return {
        "patients": patients,
        "target": target,
        "test_patients": runs[0]["test_patients"],
        "share_p_below_0.05": float(np.mean(p < 0.05)),
        "share_p_below_0.01": float(np.mean(p < 0.01)),
        "median_p": float(np.median(p)),
        "mean_value_minus_tabular": round(float(gap.mean()), 4),
        "seeds": runs,
    }


def main(argv: list[str] | None = None) -> int:
    """Write the study's demo_power JSON; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", choices=sorted(GENERATORS), default="liver_response")
    parser.add_argument("--patients", type=int, nargs="+", default=[200, 300, 400])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(100, 140)))
    parser.add_argument("--out", type=Path, default=None, help="output JSON")
    args = parser.parse_args(argv)
    name = "demo_power" if args.study == "liver_response" else f"demo_power_{args.study}"
    out = args.out or REPO / "benchmarks" / f"{name}.json"
    logging.disable(logging.WARNING)  # the generator's split rebalancing notes
    sizes = []
    for n in args.patients:
        by_target: dict[str, list[dict]] = {}
        for seed in args.seeds:
            for row in oracle_test(args.study, seed, n):
                by_target.setdefault(row.pop("target"), []).append(row)
        for target, runs in by_target.items():
            sizes.append(summary(n, target, runs))
            p = np.array([r["p_value"] for r in runs])
            print(
                f"{args.study} {target}, {n} patients ({runs[0]['test_patients']} test): the"
                f" oracle beats the tabular oracle at p < 0.05 on {np.mean(p < 0.05):.0%} of"
                f" {len(p)} seeds, p < 0.01 on {np.mean(p < 0.01):.0%}; median p {np.median(p):.2g}"
            )
    command = "python benchmarks/demo_power.py " + " ".join(argv if argv is not None else [])
    result = {"study": args.study, "command": command.strip(), "sizes": sizes}
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
