"""Choose the refit head's lesion descriptor on a fold's validation cases (frozen network).

The refit head of pancreas_multitask reads, per encoder stage, the global mean of the features
and their mean and SD over the predicted lesion (three parts); the fourth candidate part is the
lesion's contrast with the organ around it (:func:`oncoflow.segmentation.multitask.
lesion_descriptor`), in which a scanner's calibration offset cancels at the finest stage. The
network is trained once; for each descriptor this script trains the head on the fold's training
cases (five initialisations) and scores the fold's validation cases by macro one-vs-rest AUC.
Nothing of a test split is read. Run it on the results trees of ``benchmarks/site_transfer.py``
(leave-one-site-out fold 0: the validation cases come from a scanner the network never saw).

Rule fixed before the runs: keep the contrast part when its mean validation AUC is higher on
every tree given.

Usage:
    python benchmarks/head_descriptor.py --seed 31 /tmp/site_transfer_31/shift_0 [...]
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

from readme_block import replace_block  # noqa: E402

from oncoflow.metrics.classification import macro_auc  # noqa: E402
from oncoflow.segmentation.frozen_head import (  # noqa: E402
    case_features,
    fold_files,
    head_probabilities,
    train_head,
)
from oncoflow.segmentation.predict import load_predictor  # noqa: E402
from oncoflow.segmentation.workflow import read_cases  # noqa: E402

STUDY = "pancreas_multitask"
PARTS = ("global_mean", "lesion_mean", "lesion_sd", "lesion_contrast")
VARIANTS = {"lesion": PARTS[:3], "lesion+contrast": PARTS}
SEEDS = 5


def columns(stage_channels: list[int], parts: tuple[str, ...]) -> np.ndarray:
    """Indices of ``parts`` in the four-part descriptor (per stage: ``len(PARTS)`` blocks)."""
    out, start = [], 0
    for channels in stage_channels:
        for name in PARTS:
            if name in parts:
                out += list(range(start, start + channels))
            start += channels
    return np.array(out)


def frozen_fold(tree: Path, fold: int) -> tuple[Path, pd.DataFrame, list[str], dict, Any]:
    """``(raw dataset, cases by case_id, class names, fold split, predictor)`` of a results tree."""
    root = tree / "results" / STUDY / "nnunet"
    raw = next((root / "nnUNet_raw").glob("Dataset*"))
    cases = read_cases(raw).set_index("case_id")
    names = json.loads((raw / "dataset.json").read_text())["oncoflow"]["classes"]
    split = json.loads((root / "splits_final.json").read_text())[fold]
    model_dir = next((root / "nnUNet_results" / raw.name).glob("*__*__*"))
    predictor = load_predictor(
        model_dir, (fold,), checkpoint="checkpoint_final.pth", device="cpu", mirroring=False
    )
    return raw, cases, names, split, predictor


def head_runs(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, n: int, hidden: int, dropout: float
) -> list[np.ndarray]:
    """Validation probabilities of :data:`SEEDS` heads (one per initialisation seed)."""
    out = []
    for seed in range(SEEDS):
        head = train_head(x_train, y_train, n, hidden=hidden, dropout=dropout, seed=seed)
        out.append(head_probabilities(head, x_val))
    return out


def probe(tree: Path, fold: int, hidden: int, dropout: float) -> dict[str, Any]:
    """Validation macro AUC of each descriptor on one results tree's fold."""
    raw, cases, names, split, predictor = frozen_fold(tree, fold)
    index = {n: i for i, n in enumerate(names)}
    x, y = {}, {}
    for part, ids in (("train", sorted(split["train"])), ("val", sorted(split["val"]))):
        x[part] = case_features(predictor, fold_files(raw, ids, "imagesTr", 1), contrast=True)
        y[part] = cases.loc[ids, "target"].map(index).to_numpy(int)
    stages = [int(c) for c in predictor.network.encoder.output_channels]
    if x["train"].shape[1] != len(PARTS) * sum(stages):
        msg = f"{tree}: descriptor width {x['train'].shape[1]}, expected {len(PARTS)} parts"
        raise SystemExit(msg)
    out: dict[str, Any] = {"n_train": len(y["train"]), "n_validation": len(y["val"])}
    for variant, parts in VARIANTS.items():
        cols = columns(stages, parts)
        runs = head_runs(
            x["train"][:, cols], y["train"], x["val"][:, cols], len(names), hidden, dropout
        )
        aucs = [macro_auc(y["val"], p) for p in runs]
        out[variant] = {"auc_macro_mean": round(float(np.mean(aucs)), 4), "runs": aucs}
    return out


def table(result: dict[str, Any]) -> str:
    """The README block: mean validation macro AUC of each descriptor per network."""
    trees = result["trees"]
    lines = [
        f"Refit-head descriptor on the same validation cases (fold {result['fold']}, "
        f"`python benchmarks/head_descriptor.py --seed {result['seed']} <trees>`, "
        f"`benchmarks/head_descriptor_{result['seed']}.json`; mean of {SEEDS} head "
        "initialisations):",
        "",
        "| network (results tree) | " + " | ".join(VARIANTS) + " |",
        "|---|" + "---|" * len(VARIANTS),
    ]
    for name, tree in trees.items():
        cells = " | ".join(f"{tree[v]['auc_macro_mean']:.3f}" for v in VARIANTS)
        lines.append(f"| {name} | {cells} |")
    lines += ["", f"Contrast part kept: {'yes' if result['keep_contrast'] else 'no'}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Probe each tree, apply the rule, write ``head_descriptor_<seed>.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", type=Path, nargs="*", help="results trees (--directory)")
    parser.add_argument("--seed", type=int, required=True, help="the trees' demo seed")
    parser.add_argument("--fold", type=int, default=0, help="trained fold (default 0)")
    parser.add_argument("--hidden", type=int, default=64, help="head width (config head.hidden)")
    parser.add_argument("--dropout", type=float, default=0.3, help="head dropout")
    parser.add_argument("--render-only", action="store_true", help="README block from the JSON")
    args = parser.parse_args(argv)
    out = HERE / f"head_descriptor_{args.seed}.json"
    if args.render_only:
        replace_block(REPO / "README.md", "head_descriptor", table(json.loads(out.read_text())))
        return 0
    if not args.trees:
        parser.error("give at least one results tree")
    if args.seed == 20261123:
        parser.error("the README's seed is not a development seed")
    trees = {tree.name: probe(tree, args.fold, args.hidden, args.dropout) for tree in args.trees}
    keep = all(
        t["lesion+contrast"]["auc_macro_mean"] > t["lesion"]["auc_macro_mean"]
        for t in trees.values()
    )
    result = {"seed": args.seed, "fold": args.fold, "trees": trees, "keep_contrast": keep}
    out.write_text(json.dumps(result, indent=1) + "\n")
    replace_block(REPO / "README.md", "head_descriptor", table(result))
    for name, tree in trees.items():
        print(name, {v: tree[v]["auc_macro_mean"] for v in VARIANTS})
    print(f"keep the contrast part: {keep} -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
