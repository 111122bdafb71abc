"""Should the refit head read site-harmonised descriptors? Decided on leave-one-site-out folds.

The external site reads CT through another scanner (offset, noise, blur). The lesion-statistics
baseline, fit on two training sites, still ranks the external patients well (macro AUC 0.85 /
0.83 on the README's two seeds) but its macro-F1 falls to 0.43 / 0.46: the class boundaries
move with the scanner. The refit head's network descriptors move with it too. The remedy asked
here is the one the workflow already applies to radiomics features of an unseen site (ComBat
``unseen: estimate``): each site's descriptors are mapped by location and scale onto those of
the training cases, an unseen site's location and scale estimated from its own cases' descriptors
(never from their classes).

Per descriptor feature ``j``, with ``m_s, s_s`` the mean and SD of site ``s``'s cases (the
training cases for a training site, the site's own cases otherwise) and ``m, s`` those of all
training cases: ``x' = (x - m_s) / s_s * s + m`` (``s_s = 0``: location only;
:class:`oncoflow.segmentation.refit.SiteMapping`, ``nnunet.harmonize_head``).

On a leave-one-site-out fold the validation cases are all from the site the network and head
never saw, so their location and scale come from the validation cases themselves: exactly the
situation of the external test site. For each results tree of ``benchmarks/site_transfer.py``
(one trained fold) the head is trained on the fold's training cases with and without the
mapping (five initialisations each) and the validation cases are scored by macro one-vs-rest AUC
and macro-F1 (most probable class). Nothing of a test split is read.

Rule fixed before the runs (2026-12-06, before either tree's network was trained): adopt the
mapping when its validation macro AUC, mean over the trees given (leave-one-site-out folds 0
and 1 of development seed 31), is higher than without it by at least 0.03 and is not lower on
any tree by more than 0.02.

Usage:
    python benchmarks/head_harmonization.py --seed 31 --tree 0:/tmp/s9/loso0/none \
        --tree 1:/tmp/s9/loso1/none
    python benchmarks/head_harmonization.py --seed 31 --render-only   # README block
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

from head_descriptor import SEEDS, frozen_fold, head_runs  # noqa: E402
from readme_block import replace_block  # noqa: E402

from oncoflow.metrics.classification import macro_auc  # noqa: E402
from oncoflow.metrics.decision import confusion_codes, confusion_macro_f1  # noqa: E402
from oncoflow.segmentation.frozen_head import (  # noqa: E402
    case_features,
    fold_files,
)
from oncoflow.segmentation.refit import SiteMapping  # noqa: E402

STUDY = "pancreas_multitask"
VARIANTS = ("raw", "site_harmonised")


def probe(tree: Path, fold: int, hidden: int, dropout: float) -> dict[str, Any]:
    """Validation macro AUC / macro-F1 of the head with and without the mapping on one tree."""
    raw, cases, names, split, predictor = frozen_fold(tree, fold)
    images = pd.read_csv(tree / "resources" / "demo" / STUDY / "images.csv")
    site = images.drop_duplicates("patient_id").set_index("patient_id")["site"]
    index = {n: i for i, n in enumerate(names)}
    x, y, sites = {}, {}, {}
    for part, ids in (("train", sorted(split["train"])), ("val", sorted(split["val"]))):
        x[part] = case_features(predictor, fold_files(raw, ids, "imagesTr", 1))
        y[part] = cases.loc[ids, "target"].map(index).to_numpy(int)
        sites[part] = site.loc[cases.loc[ids, "patient_id"]].to_numpy()
    seen = set(sites["train"])
    if seen & set(sites["val"]):
        msg = f"{tree}: fold {fold} validates on a training site ({sorted(seen)})"
        raise SystemExit(msg)
    mapping = SiteMapping.fit(x["train"], sites["train"])
    mapped = {part: mapping.transform(x[part], sites[part]) for part in ("train", "val")}
    inputs = {"raw": x, "site_harmonised": mapped}
    out: dict[str, Any] = {
        "fold": fold,
        "training_sites": sorted(seen),
        "validation_sites": sorted(set(sites["val"])),
        "n_train": len(y["train"]),
        "n_validation": len(y["val"]),
    }
    n = len(names)
    for variant in VARIANTS:
        runs = head_runs(
            inputs[variant]["train"], y["train"], inputs[variant]["val"], n, hidden, dropout
        )
        aucs = [float(macro_auc(y["val"], p)) for p in runs]
        f1s = [confusion_macro_f1(confusion_codes(y["val"], p.argmax(axis=1), n)) for p in runs]
        out[variant] = {
            "auc_macro_mean": round(float(np.mean(aucs)), 4),
            "f1_macro_mean": round(float(np.mean(f1s)), 4),
            "auc_runs": aucs,
            "f1_runs": f1s,
        }
    return out


def decide(trees: dict[str, dict[str, Any]]) -> bool:
    """The rule of the module docstring."""
    gains = [
        t["site_harmonised"]["auc_macro_mean"] - t["raw"]["auc_macro_mean"] for t in trees.values()
    ]
    return float(np.mean(gains)) >= 0.03 and min(gains) >= -0.02


def table(result: dict[str, Any]) -> str:
    """The README block: validation macro AUC and macro-F1 with and without the mapping."""
    lines = [
        f"Refit head with and without the site mapping on the validation cases of each "
        f"leave-one-site-out fold (development seed {result['seed']}, `python "
        f"benchmarks/head_harmonization.py --seed {result['seed']} --tree <fold>:<tree> ...`, "
        f"`benchmarks/head_harmonization_{result['seed']}.json`; mean of {SEEDS} head "
        "initialisations, macro-F1 of the most probable class):",
        "",
        "| fold (fit on -> validate on) | macro AUC, raw | macro AUC, site-mapped "
        "| macro-F1, raw | macro-F1, site-mapped |",
        "|---|---|---|---|---|",
    ]
    for name, t in result["trees"].items():
        where = f"{name} ({', '.join(t['training_sites'])} -> {', '.join(t['validation_sites'])})"
        raw, mapped = t["raw"], t["site_harmonised"]
        lines.append(
            f"| {where} | {raw['auc_macro_mean']:.3f} | {mapped['auc_macro_mean']:.3f} "
            f"| {raw['f1_macro_mean']:.3f} | {mapped['f1_macro_mean']:.3f} |"
        )
    verdict = "adopted" if result["adopt"] else "not adopted"
    lines += ["", f"By the rule in the script's docstring the site mapping is {verdict}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Probe each tree, apply the rule, write ``head_harmonization_<seed>.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True, help="the trees' demo seed")
    parser.add_argument("--tree", action="append", default=[], help="FOLD:results tree")
    parser.add_argument("--hidden", type=int, default=64, help="head width (config head.hidden)")
    parser.add_argument("--dropout", type=float, default=0.3, help="head dropout")
    parser.add_argument("--render-only", action="store_true", help="README block from the JSON")
    args = parser.parse_args(argv)
    out = HERE / f"head_harmonization_{args.seed}.json"
    if args.render_only:
        block = table(json.loads(out.read_text()))
        replace_block(REPO / "README.md", "head_harmonization", block)
        return 0
    if not args.tree:
        parser.error("give at least one --tree FOLD:DIR")
    if args.seed == 20261123:
        parser.error("the README's seed is not a development seed")
    trees = {}
    for spec in args.tree:
        fold, _, path = spec.partition(":")
        trees[f"fold_{fold}"] = probe(Path(path), int(fold), args.hidden, args.dropout)
    adopt = decide(trees)
    result = {"seed": args.seed, "trees": trees, "adopt": adopt}
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    print(f"adopt the site mapping: {adopt} -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
