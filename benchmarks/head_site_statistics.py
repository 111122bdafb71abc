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

from head_reference import score  # noqa: E402
from head_statistics import SEEDS, fold_inputs, study_settings  # noqa: E402
from readme_block import replace_block  # noqa: E402

from oncoflow.segmentation.workflow import NnunetSettings  # noqa: E402

VARIANTS = {"unmapped": False, "site_mapped": True}
"""Variant -> ``harmonize_head``."""
REFERENCE = 1
"""The statistics are read against the pancreas, as config.yaml has it."""


def probe(tree: Path, fold: int, settings: NnunetSettings) -> dict[str, Any]:
    """Both variants on one leave-one-site-out tree (its validation site must be unseen)."""
    data = fold_inputs(tree, settings, fold, REFERENCE)
    train_sites, val_sites = (sorted(set(s)) for s in data["sites"])
    if set(train_sites) & set(val_sites):
        msg = f"{tree}: fold {fold} validates on a training site ({train_sites})"
        raise SystemExit(msg)
    out: dict[str, Any] = {
        "fold": fold,
        "training_sites": train_sites,
        "validation_sites": val_sites,
        "n_train": len(data["y"][0]),
        "n_validation": len(data["y"][1]),
    }
    for variant, harmonize in VARIANTS.items():
        out[variant] = score(data, settings, REFERENCE, harmonize=harmonize)
        print(f"fold {fold} {variant}: {out[variant]}", flush=True)
    return out


def decide(trees: dict[str, dict[str, Any]]) -> bool:
    """The rule of the module docstring."""
    auc = [
        t["site_mapped"]["auc_macro_mean"] - t["unmapped"]["auc_macro_mean"] for t in trees.values()
    ]
    f1 = [
        t["site_mapped"]["f1_macro_mean"] - t["unmapped"]["f1_macro_mean"] for t in trees.values()
    ]
    return float(np.mean(f1)) >= 0.02 and float(np.mean(auc)) >= -0.01 and min(auc) >= -0.03


def table(result: dict[str, Any]) -> str:
    """The README block: validation macro AUC and macro-F1 with and without the mapping."""
    seed = result["seed"]
    lines = [
        "Refit head with its lesion statistics as read and mapped by site on the validation "
        f"cases of each leave-one-site-out fold (development seed {seed}, `python "
        f"benchmarks/head_site_statistics.py --seed {seed} --tree <fold>:<tree> ...`, "
        f"`benchmarks/head_site_statistics_{seed}.json`; mean of {SEEDS} head initialisations, "
        "macro-F1 of the most probable class):",
        "",
        "| fold (fit on -> validate on) | validation cases | macro AUC, as read | macro AUC, "
        "site-mapped | macro-F1, as read | macro-F1, site-mapped |",
        "|---|---|---|---|---|---|",
    ]
    for name, t in result["trees"].items():
        where = f"{name} ({', '.join(t['training_sites'])} -> {', '.join(t['validation_sites'])})"
        a, m = t["unmapped"], t["site_mapped"]
        lines.append(
            f"| {where} | {t['n_validation']} | {a['auc_macro_mean']:.3f} "
            f"| {m['auc_macro_mean']:.3f} | {a['f1_macro_mean']:.3f} | {m['f1_macro_mean']:.3f} |"
        )
    verdict = "adopted" if result["adopt"] else "not adopted"
    lines += ["", f"By the rule in the script's docstring the site mapping is {verdict}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Probe each tree, apply the rule, write ``head_site_statistics_<seed>.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True, help="the trees' development seed")
    parser.add_argument("--tree", action="append", default=[], help="FOLD:results tree")
    parser.add_argument("--render-only", action="store_true", help="README block from the JSON")
    args = parser.parse_args(argv)
    out = HERE / f"head_site_statistics_{args.seed}.json"
    if args.render_only:
        replace_block(
            REPO / "README.md", "head_site_statistics", table(json.loads(out.read_text()))
        )
        return 0
    if not args.tree or any(":" not in t for t in args.tree):
        parser.error("give --tree FOLD:DIR for each leave-one-site-out fold")
    settings = study_settings()
    trees = {}
    for spec in args.tree:
        fold, _, path = spec.partition(":")
        trees[f"fold_{fold}"] = probe(Path(path), int(fold), settings)
    result = {"seed": args.seed, "trees": trees, "adopt": decide(trees)}
    out.write_text(json.dumps(result, indent=1) + "\n")
    replace_block(REPO / "README.md", "head_site_statistics", table(result))
    print(table(result))
    print(f"adopt the site mapping of the statistics: {result['adopt']} -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
