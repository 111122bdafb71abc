"""Should the refit head read its lesion statistics against the organ around the lesion?

pancreas_multitask's refit head reads three statistics of the CT in the network's own predicted
lesion: median, robust SD and elongation (``nnunet.head_statistics``). The calibration
(``nnunet.calibrate``) already takes a scanner's HU offset out of the median. The SD still carries
the scanner's noise: the external site's scanner has 20 HU of noise against 10 and 15 HU at the
training sites (docs/demo.md), as much as the subtype's own texture SD (12 / 20 / 28 HU), so a
head fitted at the training sites reads a noisy scanner's lesions as more heterogeneous.
``nnunet.head_statistics_reference: 1`` reads the statistics against the pancreas (label 1) of
the same segmentation, a tissue without texture of its own: the median minus the pancreas's
median and ``sqrt(max(sd^2 - sd_pancreas^2, 0))``, the SD with the noise removed in quadrature
(:func:`oncoflow.segmentation.lesion_statistics.lesion_statistics`). The PSF, which shrinks the
lesion's texture on a blurrier scanner, is not corrected.

Decided on leave-one-site-out validation, never on a test split: the frozen networks of the
two folds of development seed 31 (``folds: {by: site, k: 2}``; ``benchmarks/site_transfer.py
--seed 31 --fold <k> --candidates none --keep DIR``) fit on one training site and validate on
the other, whose scanner the network and the head never saw (fold 0: fit on site_b, validate
on the quieter site_a; fold 1: fit on site_a, validate on the noisier, blurrier site_b). On
each fold the head is trained on the fold's training cases with absolute and with
organ-referenced statistics (the same segmentations; 5 initialisations each, as the workflow's
refit head: :func:`oncoflow.segmentation.frozen_head.train_head`, the statistics z-scored on
the training cases) and its validation cases are scored by macro one-vs-rest AUC and macro-F1
of the most probable class.

Rule fixed before the runs (2026-12-07, before either fold's network had finished training):
adopt the organ reference when, averaged over the two folds, the validation macro-F1 rises by
at least 0.02 and the validation macro AUC falls by no more than 0.01, and on neither fold does
the macro AUC fall by more than 0.03.

Usage:
    python benchmarks/head_reference.py --seed 31 --tree 0:/tmp/loso0/none --tree 1:/tmp/loso1/none
    python benchmarks/head_reference.py --seed 31 --render-only   # README block
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks"
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

from head_statistics import SEEDS, fold_inputs, study_settings  # noqa: E402
from readme_block import replace_block  # noqa: E402

from oncoflow.metrics.classification import macro_auc  # noqa: E402
from oncoflow.metrics.decision import confusion_codes, confusion_macro_f1  # noqa: E402
from oncoflow.segmentation.frozen_head import (  # noqa: E402
    head_normalized,
    head_probabilities,
    train_head,
)
from oncoflow.segmentation.refit import fit_head_inputs, head_inputs  # noqa: E402
from oncoflow.segmentation.workflow import NnunetSettings  # noqa: E402

VARIANTS = {"absolute": None, "organ": 1}
"""Variant -> ``head_statistics_reference``."""


def score(
    data: dict[str, Any],
    settings: NnunetSettings,
    reference: int | None,
    *,
    harmonize: bool = False,
) -> dict[str, Any]:
    """Validation macro AUC and macro-F1 of :data:`SEEDS` refit heads on one fold's statistics.

    ``harmonize``: the statistics are mapped by site first (``nnunet.harmonize_head``; a
    validation site the training cases lack is mapped from its own cases).
    """
    (x_train, x_val), (s_train, s_val) = data["x"], data["sites"]
    (y_train, y_val), n = data["y"], data["classes"]
    width = data["statistics"][1]
    # the head reads the statistics alone (head_descriptor: false), z-scored on training cases
    x_train, x_val = x_train[:, -width:], x_val[:, -width:]
    statistics = (data["statistics"][0], width)
    mapping, scaler, train = fit_head_inputs(
        x_train, s_train, harmonize=harmonize, statistics=statistics, descriptor=False,
        reference=reference,
    )  # fmt: skip
    val = head_inputs(x_val, s_val, mapping, scaler, descriptor=False)
    hidden = int(settings.head.get("hidden", 128))
    dropout = float(settings.head.get("dropout", 0.3))
    aucs, f1s = [], []
    for seed in range(SEEDS):
        head = train_head(
            train, y_train, n, hidden=hidden, dropout=dropout, seed=seed,
            normalized=head_normalized(train.shape[1], statistics),
        )  # fmt: skip
        p = head_probabilities(head, val)
        aucs.append(round(float(macro_auc(y_val, p)), 4))
        f1s.append(round(float(confusion_macro_f1(confusion_codes(y_val, p.argmax(axis=1), n))), 4))
    return {
        "auc_macro_mean": round(float(np.mean(aucs)), 4),
        "f1_macro_mean": round(float(np.mean(f1s)), 4),
        "auc_runs": aucs,
        "f1_runs": f1s,
    }


@dataclass(frozen=True)
class Comparison:
    """Two variants of the refit head decided on leave-one-site-out folds: names and wording.

    Attributes:
        name: The script's stem, its README block and the prefix of its JSON.
        base: Variant key of what the workflow does without the change.
        candidate: Variant key of the change.
        columns: How the table's columns name ``base`` and ``candidate``.
        intro: The table's first words (what the head reads in each variant).
        change: The change, as the verdict names it.
    """

    name: str
    base: str
    candidate: str
    columns: tuple[str, str]
    intro: str
    change: str


COMPARISON = Comparison(
    "head_reference", "absolute", "organ", ("absolute", "organ"),
    "Refit head with absolute and organ-referenced lesion statistics", "the organ reference",
)  # fmt: skip


def fold_header(data: dict[str, Any], tree: Path, fold: int) -> dict[str, Any]:
    """A fold's sites and case counts; exits when it validates on a training site."""
    train_sites, val_sites = (sorted(set(s)) for s in data["sites"])
    if set(train_sites) & set(val_sites):
        msg = f"{tree}: fold {fold} validates on a training site ({train_sites})"
        raise SystemExit(msg)
    return {
        "fold": fold,
        "training_sites": train_sites,
        "validation_sites": val_sites,
        "n_train": len(data["y"][0]),
        "n_validation": len(data["y"][1]),
    }


def probe(tree: Path, fold: int, settings: NnunetSettings) -> dict[str, Any]:
    """Both variants on one leave-one-site-out tree (its validation site must be unseen)."""
    out: dict[str, Any] = {}
    for variant, reference in VARIANTS.items():
        data = fold_inputs(tree, settings, fold, reference)
        out.update(fold_header(data, tree, fold))
        out[variant] = score(data, settings, reference)
        print(f"fold {fold} {variant}: {out[variant]}", flush=True)
    return out


def decide(trees: dict[str, dict[str, Any]], comparison: Comparison = COMPARISON) -> bool:
    """The rule of the module docstrings (this one's and head_site_statistics.py's)."""
    base, candidate = comparison.base, comparison.candidate
    auc = [t[candidate]["auc_macro_mean"] - t[base]["auc_macro_mean"] for t in trees.values()]
    f1 = [t[candidate]["f1_macro_mean"] - t[base]["f1_macro_mean"] for t in trees.values()]
    return float(np.mean(f1)) >= 0.02 and float(np.mean(auc)) >= -0.01 and min(auc) >= -0.03


def table(result: dict[str, Any], comparison: Comparison = COMPARISON) -> str:
    """The README block: validation macro AUC and macro-F1 of both variants per fold."""
    seed, name = result["seed"], comparison.name
    first, second = comparison.columns
    lines = [
        f"{comparison.intro} on the validation cases "
        f"of each leave-one-site-out fold (development seed {seed}, `python "
        f"benchmarks/{name}.py --seed {seed} --tree <fold>:<tree> ...`, "
        f"`benchmarks/{name}_{seed}.json`; mean of {SEEDS} head initialisations, "
        "macro-F1 of the most probable class):",
        "",
        f"| fold (fit on -> validate on) | validation cases | macro AUC, {first} | macro AUC, "
        f"{second} | macro-F1, {first} | macro-F1, {second} |",
        "|---|---|---|---|---|---|",
    ]
    for fold, t in result["trees"].items():
        where = f"{fold} ({', '.join(t['training_sites'])} -> {', '.join(t['validation_sites'])})"
        a, c = t[comparison.base], t[comparison.candidate]
        lines.append(
            f"| {where} | {t['n_validation']} | {a['auc_macro_mean']:.3f} "
            f"| {c['auc_macro_mean']:.3f} | {a['f1_macro_mean']:.3f} | {c['f1_macro_mean']:.3f} |"
        )
    verdict = "adopted" if result["adopt"] else "not adopted"
    lines += ["", f"By the rule in the script's docstring {comparison.change} is {verdict}."]
    return "\n".join(lines)


def run(
    argv: list[str] | None,
    comparison: Comparison,
    probe_tree: Callable[[Path, int, NnunetSettings], dict[str, Any]],
    description: str,
) -> int:
    """Probe each tree, apply the rule, write ``<name>_<seed>.json`` and the README block."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seed", type=int, required=True, help="the trees' development seed")
    parser.add_argument("--tree", action="append", default=[], help="FOLD:results tree")
    parser.add_argument("--render-only", action="store_true", help="README block from the JSON")
    args = parser.parse_args(argv)
    out = HERE / f"{comparison.name}_{args.seed}.json"
    readme = REPO / "README.md"
    if args.render_only:
        replace_block(readme, comparison.name, table(json.loads(out.read_text()), comparison))
        return 0
    if not args.tree or any(":" not in t for t in args.tree):
        parser.error("give --tree FOLD:DIR for each leave-one-site-out fold")
    settings = study_settings()
    trees = {}
    for spec in args.tree:
        fold, _, path = spec.partition(":")
        trees[f"fold_{fold}"] = probe_tree(Path(path), int(fold), settings)
    result = {"seed": args.seed, "trees": trees, "adopt": decide(trees, comparison)}
    out.write_text(json.dumps(result, indent=1) + "\n")
    replace_block(readme, comparison.name, table(result, comparison))
    print(table(result, comparison))
    print(f"adopt {comparison.change}: {result['adopt']} -> {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Probe each tree, apply the rule, write ``head_reference_<seed>.json``."""
    return run(argv, COMPARISON, probe, __doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
