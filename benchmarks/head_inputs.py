"""Choose what the refit head reads: descriptor, descriptor + statistics, or statistics alone.

``benchmarks/head_statistics.py`` turned ``nnunet.head_statistics`` on: the refit head of
pancreas_multitask reads the frozen network's lesion descriptor (360 encoder features pooled over
the predicted lesion) followed by three statistics of the CT in the network's own predicted
lesion. On both seeds it measured, the three statistics alone ranked the subtype better than
with the descriptor (validation macro AUC 0.789 / 0.896 against 0.710 / 0.806): with 40
training cases a head may drown three numbers in 360. Two things of the head were also found
wrong by reading its code, not its scores: its LayerNorm normalises each case's input together,
so z-scored statistics were divided by the descriptor's per-case scale, and over three
statistics alone a LayerNorm keeps one degree of freedom of three. The statistics now pass
the LayerNorm (:class:`oncoflow.segmentation.multitask.ClassificationHead` ``normalized``).

Candidates (``nnunet`` keys), each trained with :data:`SEEDS` initialisations on the fold's
training cases of frozen fold networks (kept ``pancreas_multitask.py --keep`` trees), scored by
the pooled out-of-fold validation macro one-vs-rest AUC (mean over initialisations):

- ``descriptor``: ``head_statistics: false``;
- ``descriptor+statistics``: ``head_statistics: true`` (statistics past the LayerNorm);
- ``statistics``: ``head_statistics: true, head_descriptor: false`` (no LayerNorm).

The head as it was before (one LayerNorm over descriptor and statistics) is shown beside them,
not a candidate. Nothing of a test split is read.

Rule fixed before the run (committed before seed 43's networks finished training): the
candidate with the highest mean pooled validation macro AUC over the trees not marked
``--seen`` is adopted; a tie keeps the earlier candidate in the list above. Seeds 5 and
20261123 are ``--seen``: their validation scores suggested the candidates. Seed 43, a fresh
development seed, decides.

Usage:
    python benchmarks/head_inputs.py --seen 5 --seen 20261123 5:/tmp/pm5 20261123:/tmp/pm2026
        43:/tmp/pm43  # one line
    python benchmarks/head_inputs.py --render-only
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

from head_statistics import (  # noqa: E402
    STUDY,
    fold_inputs,
    kept_trees,
    study_settings,
    tree_folds,
)
from readme_block import replace_block  # noqa: E402

from oncoflow.metrics.classification import macro_auc  # noqa: E402
from oncoflow.segmentation.frozen_head import (  # noqa: E402
    head_normalized,
    head_probabilities,
    train_head,
)
from oncoflow.segmentation.refit import fit_head_inputs, head_inputs  # noqa: E402

CANDIDATES = ("descriptor", "descriptor+statistics", "statistics")
BEFORE = "descriptor+statistics, one LayerNorm"
"""The head of ``head_statistics`` as first adopted: shown, not a candidate."""
VARIANTS = (*CANDIDATES, BEFORE)
SEEDS = 5


def variant_inputs(data: dict[str, Any], variant: str) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Training and validation inputs of one variant and the features its LayerNorm covers."""
    (x_train, x_val), (s_train, s_val) = data["x"], data["sites"]
    statistics = data["statistics"]
    n = statistics[1]
    if variant == "descriptor":
        return x_train[:, :-n], x_val[:, :-n], None
    descriptor = variant != "statistics"
    _, scaler, train = fit_head_inputs(
        x_train, s_train, harmonize=False, statistics=statistics, descriptor=descriptor
    )
    val = head_inputs(x_val, s_val, None, scaler, descriptor=descriptor)
    normalized = None if variant == BEFORE else head_normalized(train.shape[1], statistics)
    return train, val, normalized


def cached_fold_inputs(tree: Path, settings: Any, fold: int) -> dict[str, Any]:
    """:func:`head_statistics.fold_inputs`, kept in the tree (the frozen networks' feature pass)."""
    cache = tree / "results" / STUDY / "nnunet" / f"head_inputs_fold_{fold}.pkl"
    if cache.is_file():
        return pickle.loads(cache.read_bytes())
    data = fold_inputs(tree, settings, fold)
    cache.write_bytes(pickle.dumps(data))
    return data


def measure(tree: Path, folds: list[int]) -> dict[str, Any]:
    """Per variant: per-fold and pooled validation macro AUC (mean over initialisations)."""
    settings = study_settings()
    hidden = int(settings.head.get("hidden", 128))
    dropout = float(settings.head.get("dropout", 0.3))
    data = {k: cached_fold_inputs(tree, settings, k) for k in folds}
    y_pooled = np.concatenate([data[k]["y"][1] for k in folds])
    out: dict[str, Any] = {"n_validation": len(y_pooled)}
    for variant in VARIANTS:
        per_fold: dict[int, list[float]] = {k: [] for k in folds}
        pooled = []
        for seed in range(SEEDS):
            probs = []
            for k in folds:
                x_train, x_val, normalized = variant_inputs(data[k], variant)
                head = train_head(
                    x_train, data[k]["y"][0], data[k]["classes"], hidden=hidden,
                    dropout=dropout, seed=seed, normalized=normalized,
                )  # fmt: skip
                probs.append(head_probabilities(head, x_val))
                per_fold[k].append(macro_auc(data[k]["y"][1], probs[-1]))
            pooled.append(macro_auc(y_pooled, np.concatenate(probs)))
        out[variant] = {
            "pooled_auc_macro": round(float(np.mean(pooled)), 4),
            "pooled_runs": [round(float(a), 4) for a in pooled],
            "fold_auc_macro": {str(k): round(float(np.mean(v)), 4) for k, v in per_fold.items()},
        }
    return out


def choose(trees: dict[str, Any], seen: list[str]) -> tuple[str, dict[str, float]]:
    """The rule: the candidate with the highest mean pooled AUC over the unseen trees."""
    ruled = [t for seed, t in trees.items() if seed not in seen]
    means = {c: float(np.mean([t[c]["pooled_auc_macro"] for t in ruled])) for c in CANDIDATES}
    best = max(CANDIDATES, key=lambda c: (means[c], -CANDIDATES.index(c)))
    return best, {c: round(v, 4) for c, v in means.items()}


def table(result: dict[str, Any]) -> str:
    """The README block: pooled validation macro AUC of each head input per seed, and the rule."""
    seen = result["seen"]
    args = "".join(f"--seen {s} " for s in seen) + " ".join(f"{s}:<tree>" for s in result["trees"])
    lines = [
        "What the refit head reads, on the same out-of-fold validation cases of frozen networks "
        f"(`python benchmarks/head_inputs.py {args}`, `benchmarks/head_inputs.json`; mean of "
        f"{SEEDS} head initialisations; the last column is the head before, not a candidate):",
        "",
        "| seed | validation cases | " + " | ".join(VARIANTS) + " |",
        "|---|---|" + "---|" * len(VARIANTS),
    ]
    for seed, variants in result["trees"].items():
        cells = " | ".join(f"{variants[v]['pooled_auc_macro']:.3f}" for v in VARIANTS)
        mark = " (seen)" if seed in seen else ""
        lines.append(f"| {seed}{mark} | {variants['n_validation']} | {cells} |")
    means = ", ".join(f"{c} {v:.3f}" for c, v in result["ruled_means"].items())
    adopted = f"Adopted by the rule (mean over the unseen seeds: {means}): `{result['adopt']}`."
    lines += ["", adopted]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure the kept trees, apply the rule, write ``head_inputs.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", help="SEED:PATH of kept pancreas_multitask.py trees")
    parser.add_argument("--render-only", action="store_true", help="README block from the JSON")
    parser.add_argument("--seen", action="append", default=[], help="a seed that suggested them")
    args = parser.parse_args(argv)
    out = HERE / "head_inputs.json"
    if args.render_only:
        replace_block(REPO / "README.md", "head_inputs", table(json.loads(out.read_text())))
        return 0
    settings = study_settings()
    trees = {}
    for seed, tree in kept_trees(args.trees, parser).items():
        folds = tree_folds(tree, settings)
        trees[seed] = {"folds": folds, **measure(tree, folds)}
        print(seed, {v: trees[seed][v]["pooled_auc_macro"] for v in VARIANTS}, flush=True)
    if all(seed in args.seen for seed in trees):
        parser.error("every tree given is --seen: the rule needs an unseen one")
    adopt, means = choose(trees, args.seen)
    result = {"trees": trees, "seen": args.seen, "ruled_means": means, "adopt": adopt}
    out.write_text(json.dumps(result, indent=1) + "\n")
    replace_block(REPO / "README.md", "head_inputs", table(result))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
