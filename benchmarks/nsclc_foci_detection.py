"""Does the PET metrics' foci count see the TNM nodes and metastases the nsclc demo plants?

For each patient of the ``nsclc_mmdls`` demo generator (rendered in memory, no files), the
planted nodes (N1: one hilar node; N2: that node and one or two mediastinal ones) and the
contralateral lung metastasis (M1) are compared with what
:func:`oncoflow.features.pet.avid_foci` counts on the rendered PET with the demo's label map
(``FociOutside``: foci outside every label; ``FociLabel1``: foci inside the lung contour), with
the defaults of the workflow (SUV >= 2.5, 10 mm from the primary, 0.3-30 mL).

Writes ``benchmarks/nsclc_foci_detection.json``: patients, exact agreement of both counts, the
confusion of planted vs counted nodes and nodules, and the stage-group mix.

Usage:
    python benchmarks/nsclc_foci_detection.py [--seed 20261123] [--patients 200]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from oncoflow.demo.nsclc_mmdls import (  # noqa: E402
    STAGES,
    NsclcMmdls,
    major_diameter,
    stage_group,
    tnm,
)
from oncoflow.features.pet import avid_foci, foci_counts  # noqa: E402


def measure(seed: int, patients: int) -> dict:
    """Planted against counted foci for every patient of the seed's nsclc demo."""
    generator = NsclcMmdls(seed, patients)
    nodes, nodules, stages = Counter(), Counter(), Counter()
    exact = 0
    for patient in generator.patients():
        latent = patient.latent
        rng = generator.rng(patient.index, "pixels")  # the same stream as the rendered cohort
        grid, _, _, suv, mask = generator.arrays(patient, rng)
        spacing = (grid.spacing[2], grid.spacing[1], grid.spacing[0])
        counts = foci_counts(avid_foci(suv, mask, mask == 2, spacing), [1])
        n, m = tnm(latent)
        planted = 0 if n == 0 else 1 + (int(latent["mediastinal_nodes"]) if n == 2 else 0)
        seen = (int(counts["FociOutside"]), int(counts["FociLabel1"]))
        nodes[f"{planted}->{seen[0]}"] += 1
        nodules[f"{m}->{seen[1]}"] += 1
        exact += seen == (planted, m)
        stages[STAGES[int(stage_group(major_diameter(latent), n, m))]] += 1
    return {
        "seed": seed,
        "patients": patients,
        "exact_agreement": exact / patients,
        "nodes_planted_to_counted": dict(sorted(nodes.items())),
        "nodules_planted_to_counted": dict(sorted(nodules.items())),
        "stage_mix": {s: stages[s] for s in STAGES},
        "command": f"python benchmarks/nsclc_foci_detection.py --seed {seed} --patients {patients}",
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and write ``benchmarks/nsclc_foci_detection.json``; 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261123, help="demo seed")
    parser.add_argument("--patients", type=int, default=200, help="patients to render")
    args = parser.parse_args(argv)
    result = measure(args.seed, args.patients)
    out = REPO / "benchmarks" / "nsclc_foci_detection.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
