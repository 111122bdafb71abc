"""Should the refit head's lesion statistics be mapped by site? Decided on leave-one-site-out folds.

pancreas_multitask's refit head reads three statistics of the CT in the network's own predicted
lesion, against the pancreas around it (``nnunet.head_statistics_reference: 1``): the contrast,
the texture SD with the scanner's noise removed, the elongation. A scanner's PSF is not
corrected: ``benchmarks/texture_blur.py`` measures, on the given masks of fresh seeds, that
site_a's scanner keeps a median 0.92 of the planted texture SD, site_b's 0.65 and the external
site's 0.53 (PSF 0.6 / 1.2 / 1.8 mm), so a head fitted at the training sites reads the external
site's lesions as smoother than they are and its class boundaries on the texture move.

The remedy asked here is the one the workflow applies to radiomics features of an unseen site
(ComBat ``unseen: estimate``) and, with ``nnunet.harmonize_head``, already offered for the
network's descriptor: each site's statistics are mapped by location and scale onto those of the
fold's training cases before their z-scores, an unseen site's location and scale estimated from
its own cases' statistics, never their classes (:class:`oncoflow.segmentation.refit.SiteMapping`;
it assumes the subtypes are as frequent at every site, as ComBat without covariates does).

On a leave-one-site-out fold every validation case is from the site the network and the head
never saw, so its location and scale come from the validation cases themselves, as the external
test site's come from its own. For each results tree of ``benchmarks/site_transfer.py`` (one
trained fold of development seed 31) the statistics-only head is trained on the fold's training
cases with and without the mapping (5 initialisations each, as the workflow's refit head; the same
segmentations and statistics) and the validation cases are scored by macro one-vs-rest AUC and
macro-F1 of the most probable class. Nothing of a test split is read.

Rule fixed before the runs (2026-12-07, 18:29, before any validation figure with the mapping was
computed): adopt the mapping (``harmonize_head: true``) when, averaged over the two folds, the
validation macro-F1 rises by at least 0.02 and the validation macro AUC falls by no more than
0.01, and on neither fold does the macro AUC fall by more than 0.03.

Usage:
    python benchmarks/head_site_statistics.py --seed 31 --tree 0:/tmp/loso0/none \
        --tree 1:/tmp/loso1/none
    python benchmarks/head_site_statistics.py --seed 31 --render-only   # README block
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

from head_reference import Comparison, fold_header, run, score  # noqa: E402
from head_statistics import fold_inputs  # noqa: E402

from oncoflow.segmentation.workflow import NnunetSettings  # noqa: E402

VARIANTS = {"unmapped": False, "site_mapped": True}
"""Variant -> ``harmonize_head``."""
REFERENCE = 1
"""The statistics are read against the pancreas, as config.yaml has it."""


COMPARISON = Comparison(
    "head_site_statistics", "unmapped", "site_mapped", ("as read", "site-mapped"),
    "Refit head with its lesion statistics as read and mapped by site", "the site mapping",
)  # fmt: skip


def probe(tree: Path, fold: int, settings: NnunetSettings) -> dict[str, Any]:
    """Both variants on one leave-one-site-out tree (its validation site must be unseen)."""
    data = fold_inputs(tree, settings, fold, REFERENCE)
    out = fold_header(data, tree, fold)
    for variant, harmonize in VARIANTS.items():
        out[variant] = score(data, settings, REFERENCE, harmonize=harmonize)
        print(f"fold {fold} {variant}: {out[variant]}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    """Probe each tree, apply the rule, write ``head_site_statistics_<seed>.json``."""
    return run(argv, COMPARISON, probe, __doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
