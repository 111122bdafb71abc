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
    SEEDS,
    STUDY,
    fold_inputs,
    measure_trees,
    score_variants,
    variant_rows,
)
from readme_block import replace_block  # noqa: E402

from oncoflow.segmentation.frozen_head import (  # noqa: E402
    head_normalized,
)
from oncoflow.segmentation.refit import fit_head_inputs, head_inputs  # noqa: E402

CANDIDATES = ("descriptor", "descriptor+statistics", "statistics")
BEFORE = "descriptor+statistics, one LayerNorm"
"""The head of ``head_statistics`` as first adopted: shown, not a candidate."""
VARIANTS = (*CANDIDATES, BEFORE)


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


def measure(tree: Path, settings: Any, folds: list[int]) -> dict[str, Any]:
    """:func:`head_statistics.score_variants` of this benchmark's variants on one kept tree."""
    data = {k: cached_fold_inputs(tree, settings, k) for k in folds}
    return score_variants(data, VARIANTS, variant_inputs, settings)


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
        *variant_rows(result["trees"], VARIANTS, seen, "seen"),
    ]
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
    trees = measure_trees(args.trees, parser, measure)
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
