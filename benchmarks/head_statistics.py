"""Choose whether the refit head reads the image inside the network's own lesion (validation only).

The refit head of pancreas_multitask reads the frozen network's lesion descriptor (encoder
features pooled over the predicted lesion). ``nnunet.head_statistics`` appends what a reader
measures on that predicted lesion: the CT's median and robust SD in its core (HU, after the
calibration) and its elongation (:mod:`oncoflow.segmentation.lesion_statistics`). The
lesion-statistics baseline reads the same three numbers off the *given* masks and ranks far better
than the head (validation macro AUC 0.89 against 0.73 on seed 5,
``benchmarks/pancreas_multitask_5.json``).

For each trained fold of each kept ``pancreas_multitask.py --keep`` tree (one per demo seed;
the science-scale demo trains fold 0, so a tree has 20 validation cases) the networks stay frozen;
the fold's training cases are read as the refit head reads them, and its validation cases as
the workflow's prediction read them (uncalibrated, then shifted by the offset their prediction
measured). Three heads inputs, each trained with :data:`SEEDS` initialisations on the training
cases: ``descriptor`` (today's head), ``descriptor+statistics`` and ``statistics`` (the three
numbers alone; shown, not a candidate: the study's head reads the network). Scored by the macro
one-vs-rest AUC of the out-of-fold validation rows pooled over the folds (mean over
initialisations). Nothing of a test split is read.

Rule fixed before the run: ``head_statistics`` is turned on when ``descriptor+statistics`` has
the higher pooled validation macro AUC than ``descriptor`` on every tree given.

History, on seed 5's validation cases: the first statistics (plain mean and SD of the whole
predicted lesion) lost, 0.665 against 0.674: on validation cases their SD correlated 0.46 and
the elongation 0.12 with the same statistics of the given masks (rim voxels that mix lesion and
pancreas, stray islands). The robust statistics (largest component, median and MAD in its core)
were designed there, so seed 5 is no longer a test of them: the rule is read on the trees given
after that (``--design-seed 5`` reports seed 5 and leaves it out of the rule).

Usage:
    python benchmarks/head_statistics.py --design-seed 5 5:/tmp/pm5 20261123:/tmp/pm2026
    python benchmarks/head_statistics.py --render-only
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

from readme_block import replace_block  # noqa: E402
from run import _merged_config  # noqa: E402

from oncoflow.metrics.classification import macro_auc  # noqa: E402
from oncoflow.segmentation.calibrate import UNCALIBRATED  # noqa: E402
from oncoflow.segmentation.frozen_head import (  # noqa: E402
    case_features,
    fold_files,
    head_probabilities,
    train_head,
)
from oncoflow.segmentation.predict import predicted_offsets, study_predictor  # noqa: E402
from oncoflow.segmentation.refit import fit_head_inputs, head_inputs  # noqa: E402
from oncoflow.segmentation.workflow import NnunetSettings, read_cases  # noqa: E402
from oncoflow.workflow.options import nnunet_settings  # noqa: E402

STUDY = "pancreas_multitask"
VARIANTS = ("descriptor", "descriptor+statistics", "statistics")
SEEDS = 5


def study_settings() -> NnunetSettings:
    """The study's nnU-Net settings at science scale, with the statistics on (to measure them)."""
    block = nnunet_settings(STUDY, _merged_config("full")["studies"][STUDY])
    return NnunetSettings.from_json(json.dumps({**block, "head_statistics": True}))


def fold_inputs(
    tree: Path, settings: NnunetSettings, fold: int, reference: int | None = None
) -> dict[str, Any]:
    """Raw inputs (descriptor + statistics), classes and ids of one fold's train / val cases.

    ``reference``: the statistics are read against this label (``head_statistics_reference``).
    """
    root = tree / "results" / STUDY / "nnunet"
    raw = root / "nnUNet_raw" / settings.dataset
    cases = read_cases(raw).set_index("case_id")
    names = json.loads((raw / "dataset.json").read_text())["oncoflow"]["classes"]
    split = json.loads((root / "splits_final.json").read_text())[fold]
    predictor = study_predictor(settings, root / "nnUNet_results", (fold,), "cpu")
    label, n = settings.statistics or (0, 0)
    channels = len(settings.channels)
    train_ids, val_ids = sorted(split["train"]), sorted(split["val"])
    x_train = case_features(
        predictor,
        fold_files(raw, train_ids, "imagesTr", channels),
        statistics_label=label,
        statistics_reference=reference,
    )
    x_val = case_features(
        predictor,
        fold_files(raw, val_ids, UNCALIBRATED, channels),
        calibration=settings.calibration,
        offsets=predicted_offsets([root / "predict" / f"fold_{fold}"]),
        statistics_label=label,
        statistics_reference=reference,
    )
    index = {name: i for i, name in enumerate(names)}
    return {
        "x": (x_train, x_val),
        "y": tuple(
            cases.loc[ids, "target"].map(index).to_numpy(int) for ids in (train_ids, val_ids)
        ),
        "sites": tuple(cases.loc[ids, "site"].tolist() for ids in (train_ids, val_ids)),
        "classes": len(names),
        "statistics": (label, n),
    }


def tree_folds(tree: Path, settings: NnunetSettings) -> list[int]:
    """The trained folds of a kept tree's network (``fold_<k>`` folders)."""
    model_dir = tree / "results" / STUDY / "nnunet" / "nnUNet_results" / settings.dataset
    return sorted(int(p.name[5:]) for p in (model_dir / settings.model_folder).glob("fold_*"))


def kept_trees(entries: list[str], parser: argparse.ArgumentParser) -> dict[str, Path]:
    """``SEED:PATH`` arguments as seed -> tree (a parser error when none or malformed)."""
    if not entries or any(":" not in t for t in entries):
        parser.error("give SEED:PATH of each kept tree")
    return {seed: Path(path) for seed, path in (e.split(":", 1) for e in entries)}


def variant_inputs(data: dict[str, Any], variant: str) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Training and validation inputs of one head variant (scaler fitted on training cases).

    The head of this benchmark normalises every input together (``normalized`` is ``None``).
    """
    (x_train, x_val), (s_train, s_val) = data["x"], data["sites"]
    n = data["statistics"][1]
    if variant == "descriptor":
        return x_train[:, :-n], x_val[:, :-n], None
    _, scaler, train = fit_head_inputs(
        x_train, s_train, harmonize=False, statistics=data["statistics"]
    )
    val = head_inputs(x_val, s_val, None, scaler)
    if variant == "descriptor+statistics":
        return train, val, None
    return train[:, -n:], val[:, -n:], None


def score_variants(
    data: dict[int, dict[str, Any]],
    variants: Sequence[str],
    inputs: Callable[[dict[str, Any], str], tuple[np.ndarray, np.ndarray, int | None]],
    settings: NnunetSettings,
) -> dict[str, Any]:
    """Per variant: per-fold and pooled validation macro AUC (mean over initialisations).

    Args:
        data: Per fold, :func:`fold_inputs`.
        variants: The head inputs compared.
        inputs: ``(fold data, variant) -> (x_train, x_val, features the LayerNorm covers)``.
        settings: The study's settings (the head's hidden width and dropout).
    """
    hidden = int(settings.head.get("hidden", 128))
    dropout = float(settings.head.get("dropout", 0.3))
    folds = list(data)
    y_pooled = np.concatenate([data[k]["y"][1] for k in folds])
    out: dict[str, Any] = {"n_validation": len(y_pooled)}
    for variant in variants:
        per_fold: dict[int, list[float]] = {k: [] for k in folds}
        pooled = []
        for seed in range(SEEDS):
            probs = []
            for k in folds:
                x_train, x_val, normalized = inputs(data[k], variant)
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


def measure(tree: Path, settings: NnunetSettings, folds: list[int]) -> dict[str, Any]:
    """:func:`score_variants` of this benchmark's variants on one kept tree."""
    data = {k: fold_inputs(tree, settings, k) for k in folds}
    return score_variants(data, VARIANTS, variant_inputs, settings)


def measure_trees(
    entries: list[str],
    parser: argparse.ArgumentParser,
    measure: Callable[[Path, NnunetSettings, list[int]], dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Per seed of the ``SEED:PATH`` arguments: its trained folds and ``measure`` of its tree."""
    settings = study_settings()
    trees = {}
    for seed, tree in kept_trees(entries, parser).items():
        folds = tree_folds(tree, settings)
        trees[seed] = {"folds": folds, **measure(tree, settings, folds)}
        scores = {v: r["pooled_auc_macro"] for v, r in trees[seed].items() if isinstance(r, dict)}
        print(seed, scores, flush=True)
    return trees


def variant_rows(
    trees: dict[str, dict[str, Any]], variants: Sequence[str], marked: Sequence[str], mark: str
) -> list[str]:
    """Table header and one row per seed: validation cases and each variant's pooled AUC."""
    lines = [
        "| seed | validation cases | " + " | ".join(variants) + " |",
        "|---|---|" + "---|" * len(variants),
    ]
    for seed, row in trees.items():
        cells = " | ".join(f"{row[v]['pooled_auc_macro']:.3f}" for v in variants)
        note = f" ({mark})" if seed in marked else ""
        lines.append(f"| {seed}{note} | {row['n_validation']} | {cells} |")
    return lines


def table(result: dict[str, Any]) -> str:
    """The README block: pooled and per-fold validation macro AUC of each head input per seed."""
    trees = result["trees"]
    design = "".join(f"--design-seed {seed} " for seed in result.get("design_seeds", []))
    seeds = design + " ".join(f"{seed}:<tree>" for seed in trees)
    lines = [
        "Refit-head inputs on the same out-of-fold validation cases, frozen networks of the "
        f"science-scale demo (`python benchmarks/head_statistics.py {seeds}`, "
        f"`benchmarks/head_statistics.json`; mean of {SEEDS} head initialisations):",
        "",
        *variant_rows(trees, VARIANTS, result.get("design_seeds", []), "designed on"),
    ]
    lines += ["", f"`head_statistics` on by the rule: {'yes' if result['adopt'] else 'no'}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure the kept trees, apply the rule, write ``head_statistics.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", help="SEED:PATH of kept pancreas_multitask.py trees")
    parser.add_argument("--render-only", action="store_true", help="README block from the JSON")
    parser.add_argument(
        "--design-seed", action="append", default=[], help="a seed the statistics were designed on"
    )
    args = parser.parse_args(argv)
    out = HERE / "head_statistics.json"
    if args.render_only:
        replace_block(REPO / "README.md", "head_statistics", table(json.loads(out.read_text())))
        return 0
    trees = measure_trees(args.trees, parser, measure)
    ruled = [t for seed, t in trees.items() if seed not in args.design_seed]
    if not ruled:
        parser.error("every tree given is a design seed: the rule needs another one")
    adopt = all(
        t["descriptor+statistics"]["pooled_auc_macro"] > t["descriptor"]["pooled_auc_macro"]
        for t in ruled
    )
    result = {"trees": trees, "design_seeds": args.design_seed, "adopt": adopt}
    out.write_text(json.dumps(result, indent=1) + "\n")
    replace_block(REPO / "README.md", "head_statistics", table(result))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
