"""Where pancreas_multitask's subtype is lost on the unseen site: the segmentation or the image.

The refit head reads three statistics of the network's *predicted* lesion (the CT's median and
robust SD in its core, its elongation; ``oncoflow.segmentation.lesion_statistics``). On the
external site (site_c: 0.95 x HU - 22, noise 20 HU, PSF 1.8 mm) its test macro AUC falls below
the internal one. Two things can take it there: the network segments an unseen scanner worse (the
statistics are read on the wrong voxels), or the scanner changes what the statistics measure on
the right voxels (blur lowers the texture SD, noise raises it).

This diagnostic splits the two. For every case the prediction scored (each fold's validation
cases, the test cases), it reads the CT as the prediction read it (uncalibrated, then shifted by
the offset in ``predict/<subset>/cases.csv``), measures the statistics on the predicted mask the
prediction wrote and on the case's given (converted) mask, and passes both through the same
stored refit heads (each validation case through its fold's head, each test case through the
mean of the folds' heads). Per split: the macro one-vs-rest AUC with the predicted-mask
statistics (it must reproduce the study's own figure: a check of the reading), with the
given-mask statistics (the segmentation made perfect, the head and the scanner unchanged), the
Spearman correlation of each statistic between the two masks, and the mean lesion Dice.

It chooses nothing: no setting is adopted from it. It reads test rows to explain a figure the
README already shows, as ``nsclc_image_only.py`` does. No network runs (the masks are read).

Writes ``benchmarks/statistics_gap.json`` and the README block ``statistics_gap``.

Usage:
    python benchmarks/statistics_gap.py 20261123:/tmp/pm2026 43:/tmp/pm43  # kept trees
    python benchmarks/statistics_gap.py --render-only
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

from head_statistics import STUDY, kept_trees, study_settings, tree_folds  # noqa: E402
from readme_block import replace_block  # noqa: E402

from oncoflow.metrics.classification import macro_auc  # noqa: E402
from oncoflow.segmentation.calibrate import UNCALIBRATED  # noqa: E402
from oncoflow.segmentation.frozen_head import fold_files  # noqa: E402
from oncoflow.segmentation.lesion_statistics import STATISTICS, lesion_statistics  # noqa: E402
from oncoflow.segmentation.predict import read_case, refit_probabilities  # noqa: E402
from oncoflow.segmentation.refit import REFIT_FILE, load_refit_head  # noqa: E402
from oncoflow.segmentation.workflow import (  # noqa: E402
    NnunetSettings,
    read_cases,
    read_predicted,
)

OUT = HERE / "statistics_gap.json"
SPLITS = ("validation", "internal_test", "external_test")
MASKS = ("predicted", "given")


def _read_seg(path: Path) -> np.ndarray:
    """A label map in the array order of nnU-Net's reader (the order ``read_case`` gives)."""
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    return np.asarray(SimpleITKIO().read_seg(str(path))[0][0])


def subset_cases(
    tree: Path, settings: NnunetSettings, subset: str
) -> Iterator[tuple[str, pd.Series, np.ndarray, dict, dict[str, np.ndarray]]]:
    """Each case of ``predict/<subset>`` as the prediction read it, with both of its masks.

    Yields ``(case, its cases.csv row, calibrated CT channels, properties, {"predicted": mask,
    "given": mask})``: the CT uncalibrated (validation) or as exported (test), shifted by the
    offset its prediction measured; the predicted mask the prediction wrote, the given one from
    the converted tree.
    """
    root = tree / "results" / STUDY / "nnunet"
    raw = root / "nnUNet_raw" / settings.dataset
    cases = read_cases(raw).set_index("case_id")
    predicted = read_predicted([root / "predict" / subset]).set_index("case_id")
    folder = "imagesTs" if subset == "test" else UNCALIBRATED
    files = dict(fold_files(raw, list(predicted.index), folder, len(settings.channels)))
    converted = tree / "results" / "converted"
    for case, info in predicted.iterrows():
        data, properties = read_case(case, files[case])
        data = settings.calibration.apply(data, float(info["calibration_hu"]))
        row = cases.loc[case]
        given = converted / str(row["patient_id"]) / str(row["timepoint"])
        masks = {
            "predicted": _read_seg(Path(info["mask"])),
            "given": _read_seg(given / f"{settings.label}_mask.nii.gz"),
        }
        yield case, row, data, properties, masks


def subset_rows(
    tree: Path, settings: NnunetSettings, subset: str, folds: list[int]
) -> pd.DataFrame:
    """One row per case of ``predict/<subset>``: split, class, statistics on both masks, scores.

    Args:
        tree: A kept ``pancreas_multitask.py`` tree.
        settings: The study's nnU-Net settings.
        subset: ``fold_<k>`` (that fold's validation cases) or ``test``.
        folds: The trained folds (the test cases' ensemble).
    """
    root = tree / "results" / STUDY / "nnunet"
    raw = root / "nnUNet_raw" / settings.dataset
    names = json.loads((raw / "dataset.json").read_text())["oncoflow"]["classes"]
    model_dir = root / "nnUNet_results" / settings.dataset / settings.model_folder
    head_folds = folds if subset == "test" else [int(subset.removeprefix("fold_"))]
    heads = [load_refit_head(model_dir / f"fold_{k}" / REFIT_FILE) for k in head_folds]
    label = heads[0].statistics.label
    rows = []
    for case, row, data, properties, masks in subset_cases(tree, settings, subset):
        out: dict[str, Any] = {
            "case_id": case,
            "split": "validation" if row["split"] == "train" else row["split"],
            "y": names.index(str(row["target"])),
        }
        for kind, mask in masks.items():
            stats = lesion_statistics(data, mask, properties["spacing"], label)
            probs = refit_probabilities([[stats] * len(heads)], heads)[0]
            out.update({f"{kind}_{s}": float(v) for s, v in zip(STATISTICS, stats, strict=True)})
            out.update({f"{kind}_p{i}": float(p) for i, p in enumerate(probs)})
        rows.append(out)
    return pd.DataFrame(rows)


def dice_by_case(tree: Path) -> pd.Series:
    """Lesion Dice per case from the study's ``dice.csv``."""
    path = tree / "results" / STUDY / "train" / "nnunet" / "dice.csv"
    dice = pd.read_csv(path)
    dice = dice[dice["region"] == "lesion"]
    return dice.drop_duplicates("case").set_index("case")["dice"]


def summarise(rows: pd.DataFrame, dice: pd.Series) -> dict[str, Any]:
    """Per split: cases, macro AUC with each mask's statistics, Spearman per statistic, Dice."""
    out: dict[str, Any] = {}
    classes = sorted(c.removeprefix("given_p") for c in rows if c.startswith("given_p"))
    for split in SPLITS:
        part = rows[rows["split"] == split]
        if part.empty:
            continue
        y = part["y"].to_numpy(int)
        entry: dict[str, Any] = {"cases": len(part)}
        for kind in MASKS:
            scores = part[[f"{kind}_p{c}" for c in classes]].to_numpy()
            entry[f"auc_macro_{kind}"] = round(macro_auc(y, scores), 4)
        entry["spearman"] = {
            s: round(float(part[f"predicted_{s}"].corr(part[f"given_{s}"], method="spearman")), 3)
            for s in STATISTICS
        }
        entry["lesion_dice"] = round(float(dice.reindex(part["case_id"]).mean()), 4)
        out[split] = entry
    return out


def measure(tree: Path) -> dict[str, Any]:
    """Every predicted subset of one kept tree, summarised per split."""
    settings = study_settings()
    folds = tree_folds(tree, settings)
    subsets = [f"fold_{k}" for k in folds] + ["test"]
    rows = pd.concat([subset_rows(tree, settings, s, folds) for s in subsets], ignore_index=True)
    return {"folds": folds, "splits": summarise(rows, dice_by_case(tree))}


def table(result: dict[str, Any]) -> str:
    """The README block."""
    seeds = " ".join(f"{seed}:<tree>" for seed in result["trees"])
    lines = [
        "The refit head's subtype macro AUC with the statistics of the predicted and of the given "
        "lesion, same heads, same CT (`python benchmarks/statistics_gap.py "
        f"{seeds}`, `benchmarks/statistics_gap.json`; a diagnostic, it chooses nothing):",
        "",
        "| seed | split | cases | lesion Dice | predicted lesion | given lesion "
        "| Spearman predicted vs given: median / robust SD / elongation |",
        "|---|---|---|---|---|---|---|",
    ]
    for seed, tree in result["trees"].items():
        for split, e in tree["splits"].items():
            rho = " / ".join(f"{e['spearman'][s]:.2f}" for s in STATISTICS)
            lines.append(
                f"| {seed} | {split} | {e['cases']} | {e['lesion_dice']:.3f} | "
                f"{e['auc_macro_predicted']:.3f} | {e['auc_macro_given']:.3f} | {rho} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure the kept trees (or render the JSON); write the JSON and the README block."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="*", help="SEED:PATH of kept pancreas_multitask.py trees")
    parser.add_argument("--render-only", action="store_true", help="README block from the JSON")
    args = parser.parse_args(argv)
    if args.render_only:
        replace_block(REPO / "README.md", "statistics_gap", table(json.loads(OUT.read_text())))
        return 0
    trees = {seed: measure(tree) for seed, tree in kept_trees(args.trees, parser).items()}
    result = {"trees": trees}
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    replace_block(REPO / "README.md", "statistics_gap", table(result))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
